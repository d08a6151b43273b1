export {
  aligned_le64,
  aligned_u64,
  array,
  defineStruct,
  flexible,
  offsetofEnd,
  padding,
  s32,
  u16,
  u32,
  u64,
  u8,
  union,
  type ArrayType,
  type CType,
  type CValue,
  type DeepPartial,
  type FieldLayout,
  type FlexibleArray,
  type FlexibleLayout,
  type Padding,
  type StructCodec,
  type StructValue,
  type UnionMember,
} from './codec.js';
export * from './constants.js';
export * from './ioctls.js';
export {
  ioctlMinSizes,
  migStateFlagsValidity,
  migStateTransitions,
  uapiFacts,
  vfioDeviceFeatureMinData,
  type MigStateName,
  type UapiFacts,
} from './facts.js';
export * from './vfio-structs.js';
export * from './iommufd-structs.js';
export { uapiLayouts, uapiStructs, type UapiLayout } from './layouts.js';
export type { UserMemory } from './user-memory.js';
export {
  readIommufdStruct,
  readVfioArgsz,
  readVfioExtension,
  rejectUnknownFlags,
  respondIommufd,
  writeBack,
  writeBackField,
  type UserStruct,
} from './user-struct.js';
export {
  IoctlTable,
  ioctlTable,
  type IoctlCall,
  type IoctlEntry,
  type IoctlId,
  type IoctlStyle,
  type IoctlTableOptions,
  type RawIoctlHandler,
  type StructIoctlCall,
  type StructIoctlHandler,
} from './ioctl-table.js';
