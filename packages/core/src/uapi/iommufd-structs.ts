import { aligned_le64, aligned_u64, array, type CValue, defineStruct, s32, u16, u32, u8, union } from './codec.js';

/*
 * The structs of include/uapi/linux/iommufd.h, in header order, each declared
 * with the C types the header gives its members. Every ioctl struct starts
 * with `size`, which the kernel reads first (see readIommufdStruct).
 */

export const iommu_destroy = defineStruct('iommu_destroy', {
  size: u32,
  id: u32,
});
export type iommu_destroy = CValue<typeof iommu_destroy>;

export const iommu_ioas_alloc = defineStruct('iommu_ioas_alloc', {
  size: u32,
  flags: u32,
  out_ioas_id: u32,
});
export type iommu_ioas_alloc = CValue<typeof iommu_ioas_alloc>;

/** last is inclusive. */
export const iommu_iova_range = defineStruct('iommu_iova_range', {
  start: aligned_u64,
  last: aligned_u64,
});
export type iommu_iova_range = CValue<typeof iommu_iova_range>;

/** allowed_iovas points to num_iovas iommu_iova_range in user memory. */
export const iommu_ioas_iova_ranges = defineStruct('iommu_ioas_iova_ranges', {
  size: u32,
  ioas_id: u32,
  num_iovas: u32,
  __reserved: u32,
  allowed_iovas: aligned_u64,
  out_iova_alignment: aligned_u64,
});
export type iommu_ioas_iova_ranges = CValue<typeof iommu_ioas_iova_ranges>;

export const iommu_ioas_allow_iovas = defineStruct('iommu_ioas_allow_iovas', {
  size: u32,
  ioas_id: u32,
  num_iovas: u32,
  __reserved: u32,
  allowed_iovas: aligned_u64,
});
export type iommu_ioas_allow_iovas = CValue<typeof iommu_ioas_allow_iovas>;

export const iommu_ioas_map = defineStruct('iommu_ioas_map', {
  size: u32,
  flags: u32,
  ioas_id: u32,
  __reserved: u32,
  user_va: aligned_u64,
  length: aligned_u64,
  iova: aligned_u64,
});
export type iommu_ioas_map = CValue<typeof iommu_ioas_map>;

export const iommu_ioas_map_file = defineStruct('iommu_ioas_map_file', {
  size: u32,
  flags: u32,
  ioas_id: u32,
  fd: s32,
  start: aligned_u64,
  length: aligned_u64,
  iova: aligned_u64,
});
export type iommu_ioas_map_file = CValue<typeof iommu_ioas_map_file>;

export const iommu_ioas_copy = defineStruct('iommu_ioas_copy', {
  size: u32,
  flags: u32,
  dst_ioas_id: u32,
  src_ioas_id: u32,
  length: aligned_u64,
  dst_iova: aligned_u64,
  src_iova: aligned_u64,
});
export type iommu_ioas_copy = CValue<typeof iommu_ioas_copy>;

export const iommu_ioas_unmap = defineStruct('iommu_ioas_unmap', {
  size: u32,
  ioas_id: u32,
  iova: aligned_u64,
  length: aligned_u64,
});
export type iommu_ioas_unmap = CValue<typeof iommu_ioas_unmap>;

export const iommu_option = defineStruct('iommu_option', {
  size: u32,
  option_id: u32,
  op: u16,
  __reserved: u16,
  object_id: u32,
  val64: aligned_u64,
});
export type iommu_option = CValue<typeof iommu_option>;

export const iommu_vfio_ioas = defineStruct('iommu_vfio_ioas', {
  size: u32,
  ioas_id: u32,
  op: u16,
  __reserved: u16,
});
export type iommu_vfio_ioas = CValue<typeof iommu_vfio_ioas>;

/** IOMMU_HWPT_DATA_VTD_S1 payload of IOMMU_HWPT_ALLOC. */
export const iommu_hwpt_vtd_s1 = defineStruct('iommu_hwpt_vtd_s1', {
  flags: aligned_u64,
  pgtbl_addr: aligned_u64,
  addr_width: u32,
  __reserved: u32,
});
export type iommu_hwpt_vtd_s1 = CValue<typeof iommu_hwpt_vtd_s1>;

/** IOMMU_HWPT_DATA_ARM_SMMUV3 payload: the first two little-endian words of a guest STE. */
export const iommu_hwpt_arm_smmuv3 = defineStruct('iommu_hwpt_arm_smmuv3', {
  ste: array(aligned_le64, 2),
});
export type iommu_hwpt_arm_smmuv3 = CValue<typeof iommu_hwpt_arm_smmuv3>;

export const iommu_hwpt_alloc = defineStruct('iommu_hwpt_alloc', {
  size: u32,
  flags: u32,
  dev_id: u32,
  pt_id: u32,
  out_hwpt_id: u32,
  __reserved: u32,
  data_type: u32,
  data_len: u32,
  data_uptr: aligned_u64,
  fault_id: u32,
  __reserved2: u32,
});
export type iommu_hwpt_alloc = CValue<typeof iommu_hwpt_alloc>;

export const iommu_hw_info_vtd = defineStruct('iommu_hw_info_vtd', {
  flags: u32,
  __reserved: u32,
  cap_reg: aligned_u64,
  ecap_reg: aligned_u64,
});
export type iommu_hw_info_vtd = CValue<typeof iommu_hw_info_vtd>;

export const iommu_hw_info_arm_smmuv3 = defineStruct('iommu_hw_info_arm_smmuv3', {
  flags: u32,
  __reserved: u32,
  idr: array(u32, 6),
  iidr: u32,
  aidr: u32,
});
export type iommu_hw_info_arm_smmuv3 = CValue<typeof iommu_hw_info_arm_smmuv3>;

export const iommu_hw_info_tegra241_cmdqv = defineStruct('iommu_hw_info_tegra241_cmdqv', {
  flags: u32,
  version: u8,
  log2vcmdqs: u8,
  log2vsids: u8,
  __reserved: u8,
});
export type iommu_hw_info_tegra241_cmdqv = CValue<typeof iommu_hw_info_tegra241_cmdqv>;

/** in_data_type (read with IOMMU_HW_INFO_FLAG_INPUT_TYPE) and out_data_type share one word. */
export const iommu_hw_info = defineStruct('iommu_hw_info', {
  size: u32,
  flags: u32,
  dev_id: u32,
  data_len: u32,
  data_uptr: aligned_u64,
  ...union({ in_data_type: u32, out_data_type: u32 }),
  out_max_pasid_log2: u8,
  __reserved: array(u8, 3),
  out_capabilities: aligned_u64,
});
export type iommu_hw_info = CValue<typeof iommu_hw_info>;

export const iommu_hwpt_set_dirty_tracking = defineStruct('iommu_hwpt_set_dirty_tracking', {
  size: u32,
  flags: u32,
  hwpt_id: u32,
  __reserved: u32,
});
export type iommu_hwpt_set_dirty_tracking = CValue<typeof iommu_hwpt_set_dirty_tracking>;

/** data is a user pointer to the u64 bitmap. */
export const iommu_hwpt_get_dirty_bitmap = defineStruct('iommu_hwpt_get_dirty_bitmap', {
  size: u32,
  hwpt_id: u32,
  flags: u32,
  __reserved: u32,
  iova: aligned_u64,
  length: aligned_u64,
  page_size: aligned_u64,
  data: aligned_u64,
});
export type iommu_hwpt_get_dirty_bitmap = CValue<typeof iommu_hwpt_get_dirty_bitmap>;

/** IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 entry. */
export const iommu_hwpt_vtd_s1_invalidate = defineStruct('iommu_hwpt_vtd_s1_invalidate', {
  addr: aligned_u64,
  npages: aligned_u64,
  flags: u32,
  __reserved: u32,
});
export type iommu_hwpt_vtd_s1_invalidate = CValue<typeof iommu_hwpt_vtd_s1_invalidate>;

/** IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 entry: one 128-bit little-endian CMDQ command. */
export const iommu_viommu_arm_smmuv3_invalidate = defineStruct('iommu_viommu_arm_smmuv3_invalidate', {
  cmd: array(aligned_le64, 2),
});
export type iommu_viommu_arm_smmuv3_invalidate = CValue<typeof iommu_viommu_arm_smmuv3_invalidate>;

/** entry_num is in/out: on return, how many entries the kernel handled. */
export const iommu_hwpt_invalidate = defineStruct('iommu_hwpt_invalidate', {
  size: u32,
  hwpt_id: u32,
  data_uptr: aligned_u64,
  data_type: u32,
  entry_len: u32,
  entry_num: u32,
  __reserved: u32,
});
export type iommu_hwpt_invalidate = CValue<typeof iommu_hwpt_invalidate>;

/** A fault record read from the fault queue fd. */
export const iommu_hwpt_pgfault = defineStruct('iommu_hwpt_pgfault', {
  flags: u32,
  dev_id: u32,
  pasid: u32,
  grpid: u32,
  perm: u32,
  __reserved: u32,
  addr: aligned_u64,
  length: u32,
  cookie: u32,
});
export type iommu_hwpt_pgfault = CValue<typeof iommu_hwpt_pgfault>;

/** A response written to the fault queue fd. */
export const iommu_hwpt_page_response = defineStruct('iommu_hwpt_page_response', {
  cookie: u32,
  code: u32,
});
export type iommu_hwpt_page_response = CValue<typeof iommu_hwpt_page_response>;

export const iommu_fault_alloc = defineStruct('iommu_fault_alloc', {
  size: u32,
  flags: u32,
  out_fault_id: u32,
  out_fault_fd: u32,
});
export type iommu_fault_alloc = CValue<typeof iommu_fault_alloc>;

export const iommu_viommu_tegra241_cmdqv = defineStruct('iommu_viommu_tegra241_cmdqv', {
  out_vintf_mmap_offset: aligned_u64,
  out_vintf_mmap_length: aligned_u64,
});
export type iommu_viommu_tegra241_cmdqv = CValue<typeof iommu_viommu_tegra241_cmdqv>;

export const iommu_viommu_alloc = defineStruct('iommu_viommu_alloc', {
  size: u32,
  flags: u32,
  type: u32,
  dev_id: u32,
  hwpt_id: u32,
  out_viommu_id: u32,
  data_len: u32,
  __reserved: u32,
  data_uptr: aligned_u64,
});
export type iommu_viommu_alloc = CValue<typeof iommu_viommu_alloc>;

export const iommu_vdevice_alloc = defineStruct('iommu_vdevice_alloc', {
  size: u32,
  viommu_id: u32,
  dev_id: u32,
  out_vdevice_id: u32,
  virt_id: aligned_u64,
});
export type iommu_vdevice_alloc = CValue<typeof iommu_vdevice_alloc>;

export const iommu_ioas_change_process = defineStruct('iommu_ioas_change_process', {
  size: u32,
  __reserved: u32,
});
export type iommu_ioas_change_process = CValue<typeof iommu_ioas_change_process>;

/** Precedes every event read from a vEVENTQ fd. */
export const iommufd_vevent_header = defineStruct('iommufd_vevent_header', {
  flags: u32,
  sequence: u32,
});
export type iommufd_vevent_header = CValue<typeof iommufd_vevent_header>;

/** A 256-bit little-endian SMMUv3 event record. */
export const iommu_vevent_arm_smmuv3 = defineStruct('iommu_vevent_arm_smmuv3', {
  evt: array(aligned_le64, 4),
});
export type iommu_vevent_arm_smmuv3 = CValue<typeof iommu_vevent_arm_smmuv3>;

export const iommu_vevent_tegra241_cmdqv = defineStruct('iommu_vevent_tegra241_cmdqv', {
  lvcmdq_err_map: array(aligned_le64, 2),
});
export type iommu_vevent_tegra241_cmdqv = CValue<typeof iommu_vevent_tegra241_cmdqv>;

export const iommu_veventq_alloc = defineStruct('iommu_veventq_alloc', {
  size: u32,
  flags: u32,
  viommu_id: u32,
  type: u32,
  veventq_depth: u32,
  out_veventq_id: u32,
  out_veventq_fd: u32,
  __reserved: u32,
});
export type iommu_veventq_alloc = CValue<typeof iommu_veventq_alloc>;

export const iommu_hw_queue_alloc = defineStruct('iommu_hw_queue_alloc', {
  size: u32,
  flags: u32,
  viommu_id: u32,
  type: u32,
  index: u32,
  out_hw_queue_id: u32,
  nesting_parent_iova: aligned_u64,
  length: aligned_u64,
});
export type iommu_hw_queue_alloc = CValue<typeof iommu_hw_queue_alloc>;
