/** enum iommufd_object_type, for the objects the model implements. */
export type IommufdObjectType =
  | 'device'
  | 'hwpt_paging'
  | 'hwpt_nested'
  | 'ioas'
  | 'viommu'
  | 'vdevice'
  | 'access';

/**
 * struct iommufd_object: everything with an id in an iommufd context.
 *
 * `users` counts who keeps the object from being destroyed: 1 for the
 * object table itself, plus one per object that points at it (a HWPT on
 * its IOAS, a nested HWPT on its parent, an attached device on its HWPT)
 * and one per kernel user (the driver that bound a device). IOMMU_DESTROY
 * succeeds only when the table's reference is the last one.
 */
export abstract class IommufdObject {
  abstract readonly type: IommufdObjectType;
  /** Assigned when the object is allocated in a table; 0 before. */
  id = 0;
  users = 1;

  /** Releases what the object holds, including the users it took on other objects. */
  abstract destroy(): void;
}
