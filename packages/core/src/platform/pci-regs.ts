/**
 * PCI and PCI Express configuration-space facts, named as in Linux
 * include/uapi/linux/pci_regs.h so that code ported from the kernel reads the
 * same. Offsets inside a capability are relative to the capability's start.
 * Only the registers and bits the model uses or exposes are listed.
 */

/* Config space sizes */
export const PCI_CFG_SPACE_SIZE = 256;
export const PCI_CFG_SPACE_EXP_SIZE = 4096;
export const PCI_STD_HEADER_SIZEOF = 64;
export const PCI_STD_NUM_BARS = 6;

/* Type 0 and common header */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_SPECIAL = 0x8;
export const PCI_COMMAND_INVALIDATE = 0x10;
export const PCI_COMMAND_VGA_PALETTE = 0x20;
export const PCI_COMMAND_PARITY = 0x40;
export const PCI_COMMAND_WAIT = 0x80;
export const PCI_COMMAND_SERR = 0x100;
export const PCI_COMMAND_FAST_BACK = 0x200;
export const PCI_COMMAND_INTX_DISABLE = 0x400;

export const PCI_STATUS = 0x06;
export const PCI_STATUS_INTERRUPT = 0x08;
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_STATUS_66MHZ = 0x20;
export const PCI_STATUS_FAST_BACK = 0x80;
export const PCI_STATUS_PARITY = 0x100;
export const PCI_STATUS_DEVSEL_MASK = 0x600;
export const PCI_STATUS_SIG_TARGET_ABORT = 0x800;
export const PCI_STATUS_REC_TARGET_ABORT = 0x1000;
export const PCI_STATUS_REC_MASTER_ABORT = 0x2000;
export const PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000;
export const PCI_STATUS_DETECTED_PARITY = 0x8000;

export const PCI_CLASS_REVISION = 0x08;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_HEADER_TYPE_MASK = 0x7f;
export const PCI_HEADER_TYPE_MFD = 0x80;
export const PCI_HEADER_TYPE_NORMAL = 0;
export const PCI_HEADER_TYPE_BRIDGE = 1;
export const PCI_BIST = 0x0f;

export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_BASE_ADDRESS_1 = 0x14;
export const PCI_BASE_ADDRESS_2 = 0x18;
export const PCI_BASE_ADDRESS_3 = 0x1c;
export const PCI_BASE_ADDRESS_4 = 0x20;
export const PCI_BASE_ADDRESS_5 = 0x24;
export const PCI_BASE_ADDRESS_SPACE = 0x01;
export const PCI_BASE_ADDRESS_SPACE_IO = 0x01;
export const PCI_BASE_ADDRESS_SPACE_MEMORY = 0x00;
export const PCI_BASE_ADDRESS_MEM_TYPE_MASK = 0x06;
export const PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x00;
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04;
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x08;
export const PCI_BASE_ADDRESS_MEM_MASK = 0xfffffff0;
export const PCI_BASE_ADDRESS_IO_MASK = 0xfffffffc;

export const PCI_CARDBUS_CIS = 0x28;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_ROM_ADDRESS_ENABLE = 0x01;
export const PCI_ROM_ADDRESS_MASK = 0xfffff800;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_MIN_GNT = 0x3e;
export const PCI_MAX_LAT = 0x3f;

/* Type 1 (PCI-to-PCI bridge) header */
export const PCI_PRIMARY_BUS = 0x18;
export const PCI_SECONDARY_BUS = 0x19;
export const PCI_SUBORDINATE_BUS = 0x1a;
export const PCI_SEC_LATENCY_TIMER = 0x1b;
export const PCI_IO_BASE = 0x1c;
export const PCI_IO_LIMIT = 0x1d;
export const PCI_IO_RANGE_TYPE_MASK = 0x0f;
export const PCI_IO_RANGE_TYPE_16 = 0x00;
export const PCI_IO_RANGE_TYPE_32 = 0x01;
export const PCI_IO_RANGE_MASK = 0xf0;
export const PCI_SEC_STATUS = 0x1e;
export const PCI_MEMORY_BASE = 0x20;
export const PCI_MEMORY_LIMIT = 0x22;
export const PCI_MEMORY_RANGE_TYPE_MASK = 0x0f;
export const PCI_MEMORY_RANGE_MASK = 0xfff0;
export const PCI_PREF_MEMORY_BASE = 0x24;
export const PCI_PREF_MEMORY_LIMIT = 0x26;
export const PCI_PREF_RANGE_TYPE_MASK = 0x0f;
export const PCI_PREF_RANGE_TYPE_32 = 0x00;
export const PCI_PREF_RANGE_TYPE_64 = 0x01;
export const PCI_PREF_RANGE_MASK = 0xfff0;
export const PCI_PREF_BASE_UPPER32 = 0x28;
export const PCI_PREF_LIMIT_UPPER32 = 0x2c;
export const PCI_IO_BASE_UPPER16 = 0x30;
export const PCI_IO_LIMIT_UPPER16 = 0x32;
export const PCI_ROM_ADDRESS1 = 0x38;
export const PCI_BRIDGE_CONTROL = 0x3e;
export const PCI_BRIDGE_CTL_PARITY = 0x01;
export const PCI_BRIDGE_CTL_SERR = 0x02;
export const PCI_BRIDGE_CTL_ISA = 0x04;
export const PCI_BRIDGE_CTL_VGA = 0x08;
export const PCI_BRIDGE_CTL_VGA_16BIT = 0x10;
export const PCI_BRIDGE_CTL_MASTER_ABORT = 0x20;
export const PCI_BRIDGE_CTL_BUS_RESET = 0x40;
export const PCI_BRIDGE_CTL_FAST_BACK = 0x80;

/* Capability list */
export const PCI_CAP_LIST_ID = 0;
export const PCI_CAP_LIST_NEXT = 1;
export const PCI_CAP_FLAGS = 2;
export const PCI_CAP_SIZEOF = 4;
export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_AGP = 0x02;
export const PCI_CAP_ID_VPD = 0x03;
export const PCI_CAP_ID_SLOTID = 0x04;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_CHSWP = 0x06;
export const PCI_CAP_ID_PCIX = 0x07;
export const PCI_CAP_ID_HT = 0x08;
export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_DBG = 0x0a;
export const PCI_CAP_ID_CCRC = 0x0b;
export const PCI_CAP_ID_SHPC = 0x0c;
export const PCI_CAP_ID_SSVID = 0x0d;
export const PCI_CAP_ID_AGP3 = 0x0e;
export const PCI_CAP_ID_SECDEV = 0x0f;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_CAP_ID_SATA = 0x12;
export const PCI_CAP_ID_AF = 0x13;
export const PCI_CAP_ID_EA = 0x14;
export const PCI_CAP_ID_MAX = PCI_CAP_ID_EA;

/* Power Management */
export const PCI_PM_PMC = 2;
export const PCI_PM_CAP_VER_MASK = 0x0007;
export const PCI_PM_CAP_PME_CLOCK = 0x0008;
export const PCI_PM_CAP_DSI = 0x0020;
export const PCI_PM_CAP_AUX_POWER = 0x01c0;
export const PCI_PM_CAP_D1 = 0x0200;
export const PCI_PM_CAP_D2 = 0x0400;
export const PCI_PM_CAP_PME_MASK = 0xf800;
export const PCI_PM_CAP_PME_D0 = 0x0800;
export const PCI_PM_CAP_PME_D1 = 0x1000;
export const PCI_PM_CAP_PME_D2 = 0x2000;
export const PCI_PM_CAP_PME_D3hot = 0x4000;
export const PCI_PM_CAP_PME_D3cold = 0x8000;
export const PCI_PM_CAP_PME_SHIFT = 11;
export const PCI_PM_CTRL = 4;
export const PCI_PM_CTRL_STATE_MASK = 0x0003;
export const PCI_PM_CTRL_NO_SOFT_RESET = 0x0008;
export const PCI_PM_CTRL_PME_ENABLE = 0x0100;
export const PCI_PM_CTRL_DATA_SEL_MASK = 0x1e00;
export const PCI_PM_CTRL_DATA_SCALE_MASK = 0x6000;
export const PCI_PM_CTRL_PME_STATUS = 0x8000;
export const PCI_PM_PPB_EXTENSIONS = 6;
export const PCI_PM_DATA_REGISTER = 7;
export const PCI_PM_SIZEOF = 8;
export const PCI_D0 = 0;
export const PCI_D1 = 1;
export const PCI_D2 = 2;
export const PCI_D3hot = 3;

/* AGP */
export const PCI_AGP_SIZEOF = 12;

/* Vital Product Data */
export const PCI_CAP_VPD_SIZEOF = 8;

/* MSI */
export const PCI_MSI_FLAGS = 2;
export const PCI_MSI_FLAGS_ENABLE = 0x0001;
export const PCI_MSI_FLAGS_QMASK = 0x000e;
export const PCI_MSI_FLAGS_QSIZE = 0x0070;
export const PCI_MSI_FLAGS_64BIT = 0x0080;
export const PCI_MSI_FLAGS_MASKBIT = 0x0100;
export const PCI_MSI_RFU = 3;
export const PCI_MSI_ADDRESS_LO = 4;
export const PCI_MSI_ADDRESS_HI = 8;
export const PCI_MSI_DATA_32 = 8;
export const PCI_MSI_MASK_32 = 12;
export const PCI_MSI_PENDING_32 = 16;
export const PCI_MSI_DATA_64 = 12;
export const PCI_MSI_MASK_64 = 16;
export const PCI_MSI_PENDING_64 = 20;

/* MSI-X */
export const PCI_MSIX_FLAGS = 2;
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_MSIX_TABLE = 4;
export const PCI_MSIX_TABLE_BIR = 0x00000007;
export const PCI_MSIX_TABLE_OFFSET = 0xfffffff8;
export const PCI_MSIX_PBA = 8;
export const PCI_MSIX_PBA_BIR = 0x00000007;
export const PCI_MSIX_PBA_OFFSET = 0xfffffff8;
export const PCI_CAP_MSIX_SIZEOF = 12;
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_LOWER_ADDR = 0;
export const PCI_MSIX_ENTRY_UPPER_ADDR = 4;
export const PCI_MSIX_ENTRY_DATA = 8;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 12;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 0x1;

/* Advanced Features */
export const PCI_AF_LENGTH = 2;
export const PCI_AF_CAP = 3;
export const PCI_AF_CAP_TP = 0x01;
export const PCI_AF_CAP_FLR = 0x02;
export const PCI_AF_CTRL = 4;
export const PCI_AF_CTRL_FLR = 0x01;
export const PCI_AF_STATUS = 5;
export const PCI_AF_STATUS_TP = 0x01;
export const PCI_CAP_AF_SIZEOF = 6;

/* PCI-X (type 0) */
export const PCI_X_CMD = 2;
/** PCI_X_CMD_VERSION(cmd): the capability version, bits 13:12. */
export function pciXCmdVersion(cmd: number): number {
  return (cmd >> 12) & 3;
}
export const PCI_X_ECC_CSR = 8;
export const PCI_CAP_PCIX_SIZEOF_V0 = 8;
export const PCI_CAP_PCIX_SIZEOF_V1 = 24;
export const PCI_CAP_PCIX_SIZEOF_V2 = PCI_CAP_PCIX_SIZEOF_V1;

/* HyperTransport */
export const HT_3BIT_CAP_MASK = 0xe0;
export const HT_CAP_SIZEOF_LONG = 28;
export const HT_CAP_SIZEOF_SHORT = 24;

/* SATA */
export const PCI_SATA_REGS = 4;
export const PCI_SATA_REGS_MASK = 0xf;
export const PCI_SATA_REGS_INLINE = 0xf;
export const PCI_SATA_SIZEOF_SHORT = 8;
export const PCI_SATA_SIZEOF_LONG = 16;

/* PCI Express capability */
export const PCI_EXP_FLAGS = 2;
export const PCI_EXP_FLAGS_VERS = 0x000f;
export const PCI_EXP_FLAGS_TYPE = 0x00f0;
export const PCI_EXP_TYPE_ENDPOINT = 0x0;
export const PCI_EXP_TYPE_LEG_END = 0x1;
export const PCI_EXP_TYPE_ROOT_PORT = 0x4;
export const PCI_EXP_TYPE_UPSTREAM = 0x5;
export const PCI_EXP_TYPE_DOWNSTREAM = 0x6;
export const PCI_EXP_TYPE_PCI_BRIDGE = 0x7;
export const PCI_EXP_TYPE_PCIE_BRIDGE = 0x8;
export const PCI_EXP_TYPE_RC_END = 0x9;
export const PCI_EXP_TYPE_RC_EC = 0xa;
export const PCI_EXP_FLAGS_SLOT = 0x0100;
export const PCI_EXP_FLAGS_IRQ = 0x3e00;
export const PCI_EXP_DEVCAP = 4;
export const PCI_EXP_DEVCAP_PAYLOAD = 0x00000007;
export const PCI_EXP_DEVCAP_PHANTOM = 0x00000018;
export const PCI_EXP_DEVCAP_EXT_TAG = 0x00000020;
export const PCI_EXP_DEVCAP_L0S = 0x000001c0;
export const PCI_EXP_DEVCAP_L1 = 0x00000e00;
export const PCI_EXP_DEVCAP_RBER = 0x00008000;
export const PCI_EXP_DEVCAP_PWR_VAL = 0x03fc0000;
export const PCI_EXP_DEVCAP_PWR_SCL = 0x0c000000;
export const PCI_EXP_DEVCAP_FLR = 0x10000000;
export const PCI_EXP_DEVCTL = 8;
export const PCI_EXP_DEVCTL_CERE = 0x0001;
export const PCI_EXP_DEVCTL_NFERE = 0x0002;
export const PCI_EXP_DEVCTL_FERE = 0x0004;
export const PCI_EXP_DEVCTL_URRE = 0x0008;
export const PCI_EXP_DEVCTL_RELAX_EN = 0x0010;
export const PCI_EXP_DEVCTL_PAYLOAD = 0x00e0;
export const PCI_EXP_DEVCTL_EXT_TAG = 0x0100;
export const PCI_EXP_DEVCTL_PHANTOM = 0x0200;
export const PCI_EXP_DEVCTL_AUX_PME = 0x0400;
export const PCI_EXP_DEVCTL_NOSNOOP_EN = 0x0800;
export const PCI_EXP_DEVCTL_READRQ = 0x7000;
export const PCI_EXP_DEVCTL_READRQ_512B = 0x2000;
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
export const PCI_EXP_DEVSTA = 10;
export const PCI_EXP_DEVSTA_CED = 0x0001;
export const PCI_EXP_DEVSTA_NFED = 0x0002;
export const PCI_EXP_DEVSTA_FED = 0x0004;
export const PCI_EXP_DEVSTA_URD = 0x0008;
export const PCI_EXP_DEVSTA_AUXPD = 0x0010;
export const PCI_EXP_DEVSTA_TRPND = 0x0020;
export const PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V1 = 12;
export const PCI_EXP_LNKCAP = 12;
export const PCI_EXP_LNKCAP_SLS = 0x0000000f;
export const PCI_EXP_LNKCAP_MLW = 0x000003f0;
export const PCI_EXP_LNKCAP_ASPMS = 0x00000c00;
export const PCI_EXP_LNKCAP_L0SEL = 0x00007000;
export const PCI_EXP_LNKCAP_L1EL = 0x00038000;
export const PCI_EXP_LNKCAP_CLKPM = 0x00040000;
export const PCI_EXP_LNKCAP_SDERC = 0x00080000;
export const PCI_EXP_LNKCAP_DLLLARC = 0x00100000;
export const PCI_EXP_LNKCAP_LBNC = 0x00200000;
export const PCI_EXP_LNKCAP_PN = 0xff000000;
export const PCI_EXP_LNKCTL = 16;
export const PCI_EXP_LNKCTL_ASPMC = 0x0003;
export const PCI_EXP_LNKCTL_RCB = 0x0008;
export const PCI_EXP_LNKCTL_LD = 0x0010;
export const PCI_EXP_LNKCTL_RL = 0x0020;
export const PCI_EXP_LNKCTL_CCC = 0x0040;
export const PCI_EXP_LNKCTL_ES = 0x0080;
export const PCI_EXP_LNKCTL_CLKREQ_EN = 0x0100;
export const PCI_EXP_LNKCTL_HAWD = 0x0200;
export const PCI_EXP_LNKCTL_LBMIE = 0x0400;
export const PCI_EXP_LNKCTL_LABIE = 0x0800;
export const PCI_EXP_LNKSTA = 18;
export const PCI_EXP_LNKSTA_CLS = 0x000f;
export const PCI_EXP_LNKSTA_NLW = 0x03f0;
export const PCI_EXP_LNKSTA_NLW_SHIFT = 4;
export const PCI_EXP_LNKSTA_LT = 0x0800;
export const PCI_EXP_LNKSTA_SLC = 0x1000;
export const PCI_EXP_LNKSTA_DLLLA = 0x2000;
export const PCI_EXP_LNKSTA_LBMS = 0x4000;
export const PCI_EXP_LNKSTA_LABS = 0x8000;
export const PCI_CAP_EXP_ENDPOINT_SIZEOF_V1 = 20;
export const PCI_EXP_SLTCAP = 20;
export const PCI_EXP_SLTCAP_ABP = 0x00000001;
export const PCI_EXP_SLTCAP_PCP = 0x00000002;
export const PCI_EXP_SLTCAP_MRLSP = 0x00000004;
export const PCI_EXP_SLTCAP_AIP = 0x00000008;
export const PCI_EXP_SLTCAP_PIP = 0x00000010;
export const PCI_EXP_SLTCAP_HPS = 0x00000020;
export const PCI_EXP_SLTCAP_HPC = 0x00000040;
export const PCI_EXP_SLTCAP_SPLV = 0x00007f80;
export const PCI_EXP_SLTCAP_SPLS = 0x00018000;
export const PCI_EXP_SLTCAP_EIP = 0x00020000;
export const PCI_EXP_SLTCAP_NCCS = 0x00040000;
export const PCI_EXP_SLTCAP_PSN = 0xfff80000;
export const PCI_EXP_SLTCTL = 24;
export const PCI_EXP_SLTCTL_ABPE = 0x0001;
export const PCI_EXP_SLTCTL_PFDE = 0x0002;
export const PCI_EXP_SLTCTL_MRLSCE = 0x0004;
export const PCI_EXP_SLTCTL_PDCE = 0x0008;
export const PCI_EXP_SLTCTL_CCIE = 0x0010;
export const PCI_EXP_SLTCTL_HPIE = 0x0020;
export const PCI_EXP_SLTCTL_AIC = 0x00c0;
export const PCI_EXP_SLTCTL_PIC = 0x0300;
export const PCI_EXP_SLTCTL_PCC = 0x0400;
export const PCI_EXP_SLTCTL_EIC = 0x0800;
export const PCI_EXP_SLTCTL_DLLSCE = 0x1000;
export const PCI_EXP_SLTSTA = 26;
export const PCI_EXP_SLTSTA_ABP = 0x0001;
export const PCI_EXP_SLTSTA_PFD = 0x0002;
export const PCI_EXP_SLTSTA_MRLSC = 0x0004;
export const PCI_EXP_SLTSTA_PDC = 0x0008;
export const PCI_EXP_SLTSTA_CC = 0x0010;
export const PCI_EXP_SLTSTA_MRLSS = 0x0020;
export const PCI_EXP_SLTSTA_PDS = 0x0040;
export const PCI_EXP_SLTSTA_EIS = 0x0080;
export const PCI_EXP_SLTSTA_DLLSC = 0x0100;
export const PCI_EXP_RTCTL = 28;
export const PCI_EXP_RTCTL_SECEE = 0x0001;
export const PCI_EXP_RTCTL_SENFEE = 0x0002;
export const PCI_EXP_RTCTL_SEFEE = 0x0004;
export const PCI_EXP_RTCTL_PMEIE = 0x0008;
export const PCI_EXP_RTCTL_CRSSVE = 0x0010;
export const PCI_EXP_RTCAP = 30;
export const PCI_EXP_RTCAP_CRSVIS = 0x0001;
export const PCI_EXP_RTSTA = 32;
export const PCI_EXP_RTSTA_PME = 0x00010000;
export const PCI_EXP_RTSTA_PENDING = 0x00020000;
export const PCI_EXP_DEVCAP2 = 36;
export const PCI_EXP_DEVCAP2_COMP_TMOUT_DIS = 0x00000010;
export const PCI_EXP_DEVCAP2_ARI = 0x00000020;
export const PCI_EXP_DEVCAP2_ATOMIC_ROUTE = 0x00000040;
export const PCI_EXP_DEVCAP2_ATOMIC_COMP32 = 0x00000080;
export const PCI_EXP_DEVCAP2_ATOMIC_COMP64 = 0x00000100;
export const PCI_EXP_DEVCAP2_ATOMIC_COMP128 = 0x00000200;
export const PCI_EXP_DEVCAP2_LTR = 0x00000800;
export const PCI_EXP_DEVCTL2 = 40;
export const PCI_EXP_DEVCTL2_COMP_TIMEOUT = 0x000f;
export const PCI_EXP_DEVCTL2_COMP_TMOUT_DIS = 0x0010;
export const PCI_EXP_DEVCTL2_ARI = 0x0020;
export const PCI_EXP_DEVCTL2_ATOMIC_REQ = 0x0040;
export const PCI_EXP_DEVCTL2_ATOMIC_EGRESS_BLOCK = 0x0080;
export const PCI_EXP_DEVCTL2_LTR_EN = 0x0400;
export const PCI_EXP_DEVSTA2 = 42;
export const PCI_CAP_EXP_RC_ENDPOINT_SIZEOF_V2 = 44;
export const PCI_EXP_LNKCAP2 = 44;
export const PCI_EXP_LNKCTL2 = 48;
export const PCI_EXP_LNKCTL2_TLS = 0x000f;
export const PCI_EXP_LNKSTA2 = 50;
export const PCI_CAP_EXP_ENDPOINT_SIZEOF_V2 = 52;
export const PCI_EXP_SLTCAP2 = 52;
export const PCI_EXP_SLTCTL2 = 56;
export const PCI_EXP_SLTSTA2 = 58;

/* Extended capabilities */
export const PCI_EXT_CAP_ID_ERR = 0x01;
export const PCI_EXT_CAP_ID_VC = 0x02;
export const PCI_EXT_CAP_ID_DSN = 0x03;
export const PCI_EXT_CAP_ID_PWR = 0x04;
export const PCI_EXT_CAP_ID_RCLD = 0x05;
export const PCI_EXT_CAP_ID_RCILC = 0x06;
export const PCI_EXT_CAP_ID_RCEC = 0x07;
export const PCI_EXT_CAP_ID_MFVC = 0x08;
export const PCI_EXT_CAP_ID_VC9 = 0x09;
export const PCI_EXT_CAP_ID_RCRB = 0x0a;
export const PCI_EXT_CAP_ID_VNDR = 0x0b;
export const PCI_EXT_CAP_ID_CAC = 0x0c;
export const PCI_EXT_CAP_ID_ACS = 0x0d;
export const PCI_EXT_CAP_ID_ARI = 0x0e;
export const PCI_EXT_CAP_ID_ATS = 0x0f;
export const PCI_EXT_CAP_ID_SRIOV = 0x10;
export const PCI_EXT_CAP_ID_MRIOV = 0x11;
export const PCI_EXT_CAP_ID_MCAST = 0x12;
export const PCI_EXT_CAP_ID_PRI = 0x13;
export const PCI_EXT_CAP_ID_AMD_XXX = 0x14;
export const PCI_EXT_CAP_ID_REBAR = 0x15;
export const PCI_EXT_CAP_ID_DPA = 0x16;
export const PCI_EXT_CAP_ID_TPH = 0x17;
export const PCI_EXT_CAP_ID_LTR = 0x18;
export const PCI_EXT_CAP_ID_SECPCI = 0x19;
export const PCI_EXT_CAP_ID_PMUX = 0x1a;
export const PCI_EXT_CAP_ID_PASID = 0x1b;
export const PCI_EXT_CAP_ID_DPC = 0x1d;
export const PCI_EXT_CAP_ID_L1SS = 0x1e;
export const PCI_EXT_CAP_ID_PTM = 0x1f;
export const PCI_EXT_CAP_ID_DVSEC = 0x23;
export const PCI_EXT_CAP_ID_PL_64GT = 0x31;
export const PCI_EXT_CAP_ID_MAX = PCI_EXT_CAP_ID_PL_64GT;

/** PCI_EXT_CAP_ID(header) */
export function pciExtCapId(header: number): number {
  return header & 0x0000ffff;
}

/** PCI_EXT_CAP_VER(header) */
export function pciExtCapVer(header: number): number {
  return (header >>> 16) & 0xf;
}

/** PCI_EXT_CAP_NEXT(header) */
export function pciExtCapNext(header: number): number {
  return (header >>> 20) & 0xffc;
}

/* Advanced Error Reporting */
export const PCI_ERR_UNCOR_STATUS = 4;
export const PCI_ERR_UNC_UND = 0x00000001;
export const PCI_ERR_UNC_DLP = 0x00000010;
export const PCI_ERR_UNC_SURPDN = 0x00000020;
export const PCI_ERR_UNC_POISON_TLP = 0x00001000;
export const PCI_ERR_UNC_FCP = 0x00002000;
export const PCI_ERR_UNC_COMP_TIME = 0x00004000;
export const PCI_ERR_UNC_COMP_ABORT = 0x00008000;
export const PCI_ERR_UNC_UNX_COMP = 0x00010000;
export const PCI_ERR_UNC_RX_OVER = 0x00020000;
export const PCI_ERR_UNC_MALF_TLP = 0x00040000;
export const PCI_ERR_UNC_ECRC = 0x00080000;
export const PCI_ERR_UNC_UNSUP = 0x00100000;
export const PCI_ERR_UNC_ACSV = 0x00200000;
export const PCI_ERR_UNC_INTN = 0x00400000;
export const PCI_ERR_UNC_MCBTLP = 0x00800000;
export const PCI_ERR_UNC_ATOMEG = 0x01000000;
export const PCI_ERR_UNC_TLPPRE = 0x02000000;
export const PCI_ERR_UNCOR_MASK = 8;
export const PCI_ERR_UNCOR_SEVER = 12;
export const PCI_ERR_COR_STATUS = 16;
export const PCI_ERR_COR_RCVR = 0x00000001;
export const PCI_ERR_COR_BAD_TLP = 0x00000040;
export const PCI_ERR_COR_BAD_DLLP = 0x00000080;
export const PCI_ERR_COR_REP_ROLL = 0x00000100;
export const PCI_ERR_COR_REP_TIMER = 0x00001000;
export const PCI_ERR_COR_ADV_NFAT = 0x00002000;
export const PCI_ERR_COR_INTERNAL = 0x00004000;
export const PCI_ERR_COR_LOG_OVER = 0x00008000;
export const PCI_ERR_COR_MASK = 20;
export const PCI_ERR_CAP = 24;
export const PCI_ERR_CAP_FEP_MASK = 0x0000001f;
export const PCI_ERR_CAP_ECRC_GENC = 0x00000020;
export const PCI_ERR_CAP_ECRC_GENE = 0x00000040;
export const PCI_ERR_CAP_ECRC_CHKC = 0x00000080;
export const PCI_ERR_CAP_ECRC_CHKE = 0x00000100;
export const PCI_ERR_HEADER_LOG = 28;
export const PCI_ERR_ROOT_COMMAND = 44;
export const PCI_ERR_ROOT_CMD_COR_EN = 0x00000001;
export const PCI_ERR_ROOT_CMD_NONFATAL_EN = 0x00000002;
export const PCI_ERR_ROOT_CMD_FATAL_EN = 0x00000004;
export const PCI_ERR_ROOT_STATUS = 48;
export const PCI_ERR_ROOT_ERR_SRC = 52;

/* Virtual Channel */
export const PCI_VC_PORT_CAP1 = 4;
export const PCI_VC_CAP1_EVCC = 0x00000007;
export const PCI_VC_PORT_CAP2 = 8;
export const PCI_VC_CAP2_32_PHASE = 0x00000002;
export const PCI_VC_CAP2_64_PHASE = 0x00000004;
export const PCI_VC_CAP2_128_PHASE = 0x00000008;
export const PCI_CAP_VC_BASE_SIZEOF = 0x10;
export const PCI_CAP_VC_PER_VC_SIZEOF = 0x0c;

/* Power Budgeting */
export const PCI_PWR_DATA = 8;
export const PCI_EXT_CAP_PWR_SIZEOF = 16;

/* Vendor-Specific Extended Capability */
export const PCI_VNDR_HEADER = 4;
/** PCI_VNDR_HEADER_LEN(header): the capability's length in bytes. */
export function pciVndrHeaderLen(header: number): number {
  return (header >>> 20) & 0xfff;
}

/* Access Control Services */
export const PCI_ACS_CAP = 0x04;
export const PCI_ACS_SV = 0x0001;
export const PCI_ACS_TB = 0x0002;
export const PCI_ACS_RR = 0x0004;
export const PCI_ACS_CR = 0x0008;
export const PCI_ACS_UF = 0x0010;
export const PCI_ACS_EC = 0x0020;
export const PCI_ACS_DT = 0x0040;
export const PCI_ACS_EGRESS_BITS = 0x05;
export const PCI_ACS_CTRL = 0x06;
export const PCI_ACS_EGRESS_CTL_V = 0x08;

/* Address Translation Services */
export const PCI_ATS_CAP = 0x04;
export const PCI_ATS_CAP_QDEP_MASK = 0x001f;
export const PCI_ATS_CAP_PAGE_ALIGNED = 0x0020;
export const PCI_ATS_MAX_QDEP = 32;
export const PCI_ATS_CTRL = 0x06;
export const PCI_ATS_CTRL_ENABLE = 0x8000;
export const PCI_ATS_CTRL_STU_MASK = 0x001f;
export const PCI_ATS_MIN_STU = 12;
export const PCI_EXT_CAP_ATS_SIZEOF = 8;

/* Page Request Interface */
export const PCI_PRI_CTRL = 0x04;
export const PCI_PRI_CTRL_ENABLE = 0x0001;
export const PCI_PRI_CTRL_RESET = 0x0002;
export const PCI_PRI_STATUS = 0x06;
export const PCI_PRI_STATUS_RF = 0x0001;
export const PCI_PRI_STATUS_UPRGI = 0x0002;
export const PCI_PRI_STATUS_STOPPED = 0x0100;
export const PCI_PRI_STATUS_PASID = 0x8000;
export const PCI_PRI_MAX_REQ = 0x08;
export const PCI_PRI_ALLOC_REQ = 0x0c;
export const PCI_EXT_CAP_PRI_SIZEOF = 16;

/* Process Address Space ID */
export const PCI_PASID_CAP = 0x04;
export const PCI_PASID_CAP_EXEC = 0x0002;
export const PCI_PASID_CAP_PRIV = 0x0004;
export const PCI_PASID_CAP_WIDTH = 0x1f00;
export const PCI_PASID_CTRL = 0x06;
export const PCI_PASID_CTRL_ENABLE = 0x0001;
export const PCI_PASID_CTRL_EXEC = 0x0002;
export const PCI_PASID_CTRL_PRIV = 0x0004;
export const PCI_EXT_CAP_PASID_SIZEOF = 8;

/* Single Root I/O Virtualization */
export const PCI_SRIOV_CAP = 0x04;
export const PCI_SRIOV_CAP_VFM = 0x00000001;
export const PCI_SRIOV_CTRL = 0x08;
export const PCI_SRIOV_CTRL_VFE = 0x0001;
export const PCI_SRIOV_CTRL_VFM = 0x0002;
export const PCI_SRIOV_CTRL_INTR = 0x0004;
export const PCI_SRIOV_CTRL_MSE = 0x0008;
export const PCI_SRIOV_CTRL_ARI = 0x0010;
export const PCI_SRIOV_STATUS = 0x0a;
export const PCI_SRIOV_STATUS_VFM = 0x0001;
export const PCI_SRIOV_INITIAL_VF = 0x0c;
export const PCI_SRIOV_TOTAL_VF = 0x0e;
export const PCI_SRIOV_NUM_VF = 0x10;
export const PCI_SRIOV_FUNC_LINK = 0x12;
export const PCI_SRIOV_VF_OFFSET = 0x14;
export const PCI_SRIOV_VF_STRIDE = 0x16;
export const PCI_SRIOV_VF_DID = 0x1a;
export const PCI_SRIOV_SUP_PGSIZE = 0x1c;
export const PCI_SRIOV_SYS_PGSIZE = 0x20;
export const PCI_SRIOV_BAR = 0x24;
export const PCI_SRIOV_NUM_BARS = 6;
export const PCI_SRIOV_VFM = 0x3c;
export const PCI_EXT_CAP_SRIOV_SIZEOF = 64;

/* Sizes of fixed-length extended capabilities */
export const PCI_EXT_CAP_ARI_SIZEOF = 8;
export const PCI_EXT_CAP_DSN_SIZEOF = 12;
export const PCI_EXT_CAP_LTR_SIZEOF = 8;
export const PCI_EXT_CAP_MCAST_ENDPOINT_SIZEOF = 40;

/* Resizable BAR */
export const PCI_REBAR_CTRL = 8;
export const PCI_REBAR_CTRL_NBAR_MASK = 0x000000e0;
export const PCI_REBAR_CTRL_NBAR_SHIFT = 5;

/* Dynamic Power Allocation */
export const PCI_DPA_CAP = 4;
export const PCI_DPA_CAP_SUBSTATE_MASK = 0x1f;
export const PCI_DPA_BASE_SIZEOF = 16;

/* TPH Requester */
export const PCI_TPH_CAP = 4;
export const PCI_TPH_CAP_LOC_MASK = 0x600;
export const PCI_TPH_LOC_CAP = 0x200;
export const PCI_TPH_CAP_ST_MASK = 0x07ff0000;
export const PCI_TPH_CAP_ST_SHIFT = 16;
export const PCI_TPH_BASE_SIZEOF = 12;

/* Designated Vendor-Specific Extended Capability */
export const PCI_DVSEC_HEADER1 = 4;

/* Class codes used by the model (base class << 16 | subclass << 8 | prog-if) */
export const PCI_CLASS_BRIDGE_HOST = 0x0600;
export const PCI_CLASS_BRIDGE_PCI = 0x0604;
export const PCI_BASE_CLASS_BRIDGE = 0x06;
