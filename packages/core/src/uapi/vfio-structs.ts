import { aligned_u64, type CValue, defineStruct, flexible, s32, u16, u32, u64, u8, union } from './codec.js';

/*
 * The structs of include/uapi/linux/vfio.h, in header order, each declared
 * with the C types the header gives its members. Where the header says
 * __aligned_u64 the codec does too; plain __u64 is 8-aligned on x86-64 as
 * well, so the two only differ in name.
 */

// ------------------------------------------------ capability chains

export const vfio_info_cap_header = defineStruct('vfio_info_cap_header', {
  id: u16,
  version: u16,
  next: u32,
});
export type vfio_info_cap_header = CValue<typeof vfio_info_cap_header>;

// ------------------------------------------------ group fd

export const vfio_group_status = defineStruct('vfio_group_status', {
  argsz: u32,
  flags: u32,
});
export type vfio_group_status = CValue<typeof vfio_group_status>;

// ------------------------------------------------ device fd

export const vfio_device_info = defineStruct('vfio_device_info', {
  argsz: u32,
  flags: u32,
  num_regions: u32,
  num_irqs: u32,
  cap_offset: u32,
  pad: u32,
});
export type vfio_device_info = CValue<typeof vfio_device_info>;

export const vfio_device_info_cap_pci_atomic_comp = defineStruct('vfio_device_info_cap_pci_atomic_comp', {
  header: vfio_info_cap_header,
  flags: u32,
  reserved: u32,
});
export type vfio_device_info_cap_pci_atomic_comp = CValue<typeof vfio_device_info_cap_pci_atomic_comp>;

export const vfio_region_info = defineStruct('vfio_region_info', {
  argsz: u32,
  flags: u32,
  index: u32,
  cap_offset: u32,
  size: aligned_u64,
  offset: aligned_u64,
});
export type vfio_region_info = CValue<typeof vfio_region_info>;

export const vfio_region_sparse_mmap_area = defineStruct('vfio_region_sparse_mmap_area', {
  offset: aligned_u64,
  size: aligned_u64,
});
export type vfio_region_sparse_mmap_area = CValue<typeof vfio_region_sparse_mmap_area>;

export const vfio_region_info_cap_sparse_mmap = defineStruct('vfio_region_info_cap_sparse_mmap', {
  header: vfio_info_cap_header,
  nr_areas: u32,
  reserved: u32,
  areas: flexible(vfio_region_sparse_mmap_area),
});
export type vfio_region_info_cap_sparse_mmap = CValue<typeof vfio_region_info_cap_sparse_mmap>;

export const vfio_region_info_cap_type = defineStruct('vfio_region_info_cap_type', {
  header: vfio_info_cap_header,
  type: u32,
  subtype: u32,
});
export type vfio_region_info_cap_type = CValue<typeof vfio_region_info_cap_type>;

export const vfio_region_gfx_edid = defineStruct('vfio_region_gfx_edid', {
  edid_offset: u32,
  edid_max_size: u32,
  edid_size: u32,
  max_xres: u32,
  max_yres: u32,
  link_state: u32,
});
export type vfio_region_gfx_edid = CValue<typeof vfio_region_gfx_edid>;

/** The v1 migration region header; the region type is deprecated but the struct is still in the header. */
export const vfio_device_migration_info = defineStruct('vfio_device_migration_info', {
  device_state: u32,
  reserved: u32,
  pending_bytes: aligned_u64,
  data_offset: aligned_u64,
  data_size: aligned_u64,
});
export type vfio_device_migration_info = CValue<typeof vfio_device_migration_info>;

export const vfio_region_info_cap_nvlink2_ssatgt = defineStruct('vfio_region_info_cap_nvlink2_ssatgt', {
  header: vfio_info_cap_header,
  tgt: aligned_u64,
});
export type vfio_region_info_cap_nvlink2_ssatgt = CValue<typeof vfio_region_info_cap_nvlink2_ssatgt>;

export const vfio_region_info_cap_nvlink2_lnkspd = defineStruct('vfio_region_info_cap_nvlink2_lnkspd', {
  header: vfio_info_cap_header,
  link_speed: u32,
  __pad: u32,
});
export type vfio_region_info_cap_nvlink2_lnkspd = CValue<typeof vfio_region_info_cap_nvlink2_lnkspd>;

export const vfio_irq_info = defineStruct('vfio_irq_info', {
  argsz: u32,
  flags: u32,
  index: u32,
  count: u32,
});
export type vfio_irq_info = CValue<typeof vfio_irq_info>;

/** data[] holds `count` u8 (DATA_BOOL) or s32 eventfds (DATA_EVENTFD), by the DATA_* flag. */
export const vfio_irq_set = defineStruct('vfio_irq_set', {
  argsz: u32,
  flags: u32,
  index: u32,
  start: u32,
  count: u32,
  data: flexible(u8),
});
export type vfio_irq_set = CValue<typeof vfio_irq_set>;

/** group_id for group-opened devices, devid for cdev-opened ones (VFIO_PCI_HOT_RESET_FLAG_DEV_ID). */
export const vfio_pci_dependent_device = defineStruct('vfio_pci_dependent_device', {
  ...union({ group_id: u32, devid: u32 }),
  segment: u16,
  bus: u8,
  devfn: u8,
});
export type vfio_pci_dependent_device = CValue<typeof vfio_pci_dependent_device>;

export const vfio_pci_hot_reset_info = defineStruct('vfio_pci_hot_reset_info', {
  argsz: u32,
  flags: u32,
  count: u32,
  devices: flexible(vfio_pci_dependent_device),
});
export type vfio_pci_hot_reset_info = CValue<typeof vfio_pci_hot_reset_info>;

export const vfio_pci_hot_reset = defineStruct('vfio_pci_hot_reset', {
  argsz: u32,
  flags: u32,
  count: u32,
  group_fds: flexible(s32),
});
export type vfio_pci_hot_reset = CValue<typeof vfio_pci_hot_reset>;

export const vfio_device_gfx_plane_info = defineStruct('vfio_device_gfx_plane_info', {
  argsz: u32,
  flags: u32,
  drm_plane_type: u32,
  drm_format: u32,
  drm_format_mod: aligned_u64,
  width: u32,
  height: u32,
  stride: u32,
  size: u32,
  x_pos: u32,
  y_pos: u32,
  x_hot: u32,
  y_hot: u32,
  ...union({ region_index: u32, dmabuf_id: u32 }),
  reserved: u32,
});
export type vfio_device_gfx_plane_info = CValue<typeof vfio_device_gfx_plane_info>;

export const vfio_device_ioeventfd = defineStruct('vfio_device_ioeventfd', {
  argsz: u32,
  flags: u32,
  offset: aligned_u64,
  data: aligned_u64,
  fd: s32,
  reserved: u32,
});
export type vfio_device_ioeventfd = CValue<typeof vfio_device_ioeventfd>;

/** data[] is the feature's own struct, selected by flags & VFIO_DEVICE_FEATURE_MASK. */
export const vfio_device_feature = defineStruct('vfio_device_feature', {
  argsz: u32,
  flags: u32,
  data: flexible(u8),
});
export type vfio_device_feature = CValue<typeof vfio_device_feature>;

export const vfio_device_bind_iommufd = defineStruct('vfio_device_bind_iommufd', {
  argsz: u32,
  flags: u32,
  iommufd: s32,
  out_devid: u32,
  token_uuid_ptr: aligned_u64,
});
export type vfio_device_bind_iommufd = CValue<typeof vfio_device_bind_iommufd>;

export const vfio_device_attach_iommufd_pt = defineStruct('vfio_device_attach_iommufd_pt', {
  argsz: u32,
  flags: u32,
  pt_id: u32,
  pasid: u32,
});
export type vfio_device_attach_iommufd_pt = CValue<typeof vfio_device_attach_iommufd_pt>;

export const vfio_device_detach_iommufd_pt = defineStruct('vfio_device_detach_iommufd_pt', {
  argsz: u32,
  flags: u32,
  pasid: u32,
});
export type vfio_device_detach_iommufd_pt = CValue<typeof vfio_device_detach_iommufd_pt>;

// ------------------------------------------------ device features

export const vfio_device_feature_migration = defineStruct('vfio_device_feature_migration', {
  flags: aligned_u64,
});
export type vfio_device_feature_migration = CValue<typeof vfio_device_feature_migration>;

export const vfio_device_feature_mig_state = defineStruct('vfio_device_feature_mig_state', {
  device_state: u32,
  data_fd: s32,
});
export type vfio_device_feature_mig_state = CValue<typeof vfio_device_feature_mig_state>;

/** VFIO_MIG_GET_PRECOPY_INFO, issued on the migration data fd. */
export const vfio_precopy_info = defineStruct('vfio_precopy_info', {
  argsz: u32,
  flags: u32,
  initial_bytes: aligned_u64,
  dirty_bytes: aligned_u64,
});
export type vfio_precopy_info = CValue<typeof vfio_precopy_info>;

export const vfio_device_low_power_entry_with_wakeup = defineStruct('vfio_device_low_power_entry_with_wakeup', {
  wakeup_eventfd: s32,
  reserved: u32,
});
export type vfio_device_low_power_entry_with_wakeup = CValue<typeof vfio_device_low_power_entry_with_wakeup>;

/** ranges points to num_ranges vfio_device_feature_dma_logging_range in user memory. */
export const vfio_device_feature_dma_logging_control = defineStruct('vfio_device_feature_dma_logging_control', {
  page_size: aligned_u64,
  num_ranges: u32,
  __reserved: u32,
  ranges: aligned_u64,
});
export type vfio_device_feature_dma_logging_control = CValue<typeof vfio_device_feature_dma_logging_control>;

export const vfio_device_feature_dma_logging_range = defineStruct('vfio_device_feature_dma_logging_range', {
  iova: aligned_u64,
  length: aligned_u64,
});
export type vfio_device_feature_dma_logging_range = CValue<typeof vfio_device_feature_dma_logging_range>;

/** bitmap is a user pointer to the u64 bitmap the report fills. */
export const vfio_device_feature_dma_logging_report = defineStruct('vfio_device_feature_dma_logging_report', {
  iova: aligned_u64,
  length: aligned_u64,
  page_size: aligned_u64,
  bitmap: aligned_u64,
});
export type vfio_device_feature_dma_logging_report = CValue<typeof vfio_device_feature_dma_logging_report>;

export const vfio_device_feature_mig_data_size = defineStruct('vfio_device_feature_mig_data_size', {
  stop_copy_length: aligned_u64,
});
export type vfio_device_feature_mig_data_size = CValue<typeof vfio_device_feature_mig_data_size>;

export const vfio_device_feature_bus_master = defineStruct('vfio_device_feature_bus_master', {
  op: u32,
});
export type vfio_device_feature_bus_master = CValue<typeof vfio_device_feature_bus_master>;

export const vfio_region_dma_range = defineStruct('vfio_region_dma_range', {
  offset: u64,
  length: u64,
});
export type vfio_region_dma_range = CValue<typeof vfio_region_dma_range>;

export const vfio_device_feature_dma_buf = defineStruct('vfio_device_feature_dma_buf', {
  region_index: u32,
  open_flags: u32,
  flags: u32,
  nr_ranges: u32,
  dma_ranges: flexible(vfio_region_dma_range),
});
export type vfio_device_feature_dma_buf = CValue<typeof vfio_device_feature_dma_buf>;

// ------------------------------------------------ type1 container

export const vfio_iommu_type1_info = defineStruct('vfio_iommu_type1_info', {
  argsz: u32,
  flags: u32,
  iova_pgsizes: aligned_u64,
  cap_offset: u32,
  pad: u32,
});
export type vfio_iommu_type1_info = CValue<typeof vfio_iommu_type1_info>;

export const vfio_iova_range = defineStruct('vfio_iova_range', {
  start: u64,
  end: u64,
});
export type vfio_iova_range = CValue<typeof vfio_iova_range>;

export const vfio_iommu_type1_info_cap_iova_range = defineStruct('vfio_iommu_type1_info_cap_iova_range', {
  header: vfio_info_cap_header,
  nr_iovas: u32,
  reserved: u32,
  iova_ranges: flexible(vfio_iova_range),
});
export type vfio_iommu_type1_info_cap_iova_range = CValue<typeof vfio_iommu_type1_info_cap_iova_range>;

/** flags is followed by a 4-byte hole: pgsize_bitmap is a plain __u64, 8-aligned on x86-64. */
export const vfio_iommu_type1_info_cap_migration = defineStruct('vfio_iommu_type1_info_cap_migration', {
  header: vfio_info_cap_header,
  flags: u32,
  pgsize_bitmap: u64,
  max_dirty_bitmap_size: u64,
});
export type vfio_iommu_type1_info_cap_migration = CValue<typeof vfio_iommu_type1_info_cap_migration>;

export const vfio_iommu_type1_info_dma_avail = defineStruct('vfio_iommu_type1_info_dma_avail', {
  header: vfio_info_cap_header,
  avail: u32,
});
export type vfio_iommu_type1_info_dma_avail = CValue<typeof vfio_iommu_type1_info_dma_avail>;

export const vfio_iommu_type1_dma_map = defineStruct('vfio_iommu_type1_dma_map', {
  argsz: u32,
  flags: u32,
  vaddr: u64,
  iova: u64,
  size: u64,
});
export type vfio_iommu_type1_dma_map = CValue<typeof vfio_iommu_type1_dma_map>;

/** data is a `__u64 __user *`: a user address, 8 bytes on LP64. */
export const vfio_bitmap = defineStruct('vfio_bitmap', {
  pgsize: u64,
  size: u64,
  data: u64,
});
export type vfio_bitmap = CValue<typeof vfio_bitmap>;

/** With VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, data[] holds a struct vfio_bitmap. */
export const vfio_iommu_type1_dma_unmap = defineStruct('vfio_iommu_type1_dma_unmap', {
  argsz: u32,
  flags: u32,
  iova: u64,
  size: u64,
  data: flexible(u8),
});
export type vfio_iommu_type1_dma_unmap = CValue<typeof vfio_iommu_type1_dma_unmap>;

/** With VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, data[] holds a struct vfio_iommu_type1_dirty_bitmap_get. */
export const vfio_iommu_type1_dirty_bitmap = defineStruct('vfio_iommu_type1_dirty_bitmap', {
  argsz: u32,
  flags: u32,
  data: flexible(u8),
});
export type vfio_iommu_type1_dirty_bitmap = CValue<typeof vfio_iommu_type1_dirty_bitmap>;

export const vfio_iommu_type1_dirty_bitmap_get = defineStruct('vfio_iommu_type1_dirty_bitmap_get', {
  iova: u64,
  size: u64,
  bitmap: vfio_bitmap,
});
export type vfio_iommu_type1_dirty_bitmap_get = CValue<typeof vfio_iommu_type1_dirty_bitmap_get>;

// ------------------------------------------------ sPAPR TCE container and EEH

export const vfio_iommu_spapr_tce_ddw_info = defineStruct('vfio_iommu_spapr_tce_ddw_info', {
  pgsizes: u64,
  max_dynamic_windows_supported: u32,
  levels: u32,
});
export type vfio_iommu_spapr_tce_ddw_info = CValue<typeof vfio_iommu_spapr_tce_ddw_info>;

export const vfio_iommu_spapr_tce_info = defineStruct('vfio_iommu_spapr_tce_info', {
  argsz: u32,
  flags: u32,
  dma32_window_start: u32,
  dma32_window_size: u32,
  ddw: vfio_iommu_spapr_tce_ddw_info,
});
export type vfio_iommu_spapr_tce_info = CValue<typeof vfio_iommu_spapr_tce_info>;

export const vfio_eeh_pe_err = defineStruct('vfio_eeh_pe_err', {
  type: u32,
  func: u32,
  addr: u64,
  mask: u64,
});
export type vfio_eeh_pe_err = CValue<typeof vfio_eeh_pe_err>;

/** The one-member anonymous union puts err at 16: op is followed by a hole up to the union's 8-byte alignment. */
export const vfio_eeh_pe_op = defineStruct('vfio_eeh_pe_op', {
  argsz: u32,
  flags: u32,
  op: u32,
  ...union({ err: vfio_eeh_pe_err }),
});
export type vfio_eeh_pe_op = CValue<typeof vfio_eeh_pe_op>;

export const vfio_iommu_spapr_register_memory = defineStruct('vfio_iommu_spapr_register_memory', {
  argsz: u32,
  flags: u32,
  vaddr: u64,
  size: u64,
});
export type vfio_iommu_spapr_register_memory = CValue<typeof vfio_iommu_spapr_register_memory>;

export const vfio_iommu_spapr_tce_create = defineStruct('vfio_iommu_spapr_tce_create', {
  argsz: u32,
  flags: u32,
  page_shift: u32,
  __resv1: u32,
  window_size: u64,
  levels: u32,
  __resv2: u32,
  start_addr: u64,
});
export type vfio_iommu_spapr_tce_create = CValue<typeof vfio_iommu_spapr_tce_create>;

export const vfio_iommu_spapr_tce_remove = defineStruct('vfio_iommu_spapr_tce_remove', {
  argsz: u32,
  flags: u32,
  start_addr: u64,
});
export type vfio_iommu_spapr_tce_remove = CValue<typeof vfio_iommu_spapr_tce_remove>;
