import { createHost, mockIommu, type Host, type HostDescription } from '@vfiosim/core';
import { vfioPci } from '../../src/index.js';

/*
 * The machines the acceptance tests run on: real device shapes, bound to
 * vfio-pci through driver_override as setup.sh does before the selftests.
 */

type DeviceDescription = NonNullable<HostDescription['devices']>[number];

/** A host with the mock IOMMU and the real vfio-pci driver. */
export function vfioHost(description: HostDescription): Host {
  return createHost(description, { plugins: [mockIommu(), vfioPci()] });
}

/**
 * An Intel 82599ES 10G port: BAR 0 (512 KiB registers), BAR 2 (I/O ports),
 * BAR 4 (16 KiB, MSI-X table and PBA), one MSI vector and 64 MSI-X
 * vectors, FLR. Behind a root port with ACS, so it is alone in its group.
 */
export const NIC_BDF = '0000:01:00.0';

export function nic82599(bdf = NIC_BDF, extra: Partial<DeviceDescription> = {}): DeviceDescription {
  return {
    bdf,
    label: '82599ES 10-Gigabit SFI/SFP+',
    vendorId: 0x8086,
    deviceId: 0x10fb,
    classCode: 0x020000,
    subsystemVendorId: 0x8086,
    subsystemId: 0x000c,
    revision: 0x01,
    interruptPin: 1,
    bars: [
      { index: 0, type: 'mem64', size: '512K' },
      { index: 2, type: 'io', size: 32 },
      { index: 4, type: 'mem64', size: '16K' },
    ],
    capabilities: {
      msi: { vectors: 1, address64: true, perVectorMask: true },
      msix: { tableSize: 64, tableBar: 4, tableOffset: 0, pbaBar: 4, pbaOffset: 0x2000 },
      pcie: { link: { speed: 2, width: 8 } },
    },
    driver: 'vfio-pci',
    ...extra,
  };
}

export function nicHost(): Host {
  return vfioHost({
    bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 0x01, extendedCapabilities: { acs: true } }],
    devices: [nic82599()],
  });
}

/**
 * A DMA copy engine in the spirit of an I/OAT channel: 16 KiB of registers
 * in BAR 0 with the MSI-X table at 0x2000 and the PBA at 0x3000, one MSI
 * and one MSI-X vector. The test's device model gives the registers their
 * meaning (see memcpy-device.ts).
 */
export const DMA_BDF = '0000:02:00.0';

export function dmaEngineHost(): Host {
  return vfioHost({
    bridges: [{ bdf: '0000:00:02.0', kind: 'root-port', secondaryBus: 0x02, extendedCapabilities: { acs: true } }],
    devices: [
      {
        bdf: DMA_BDF,
        label: 'DMA copy engine',
        vendorId: 0x8086,
        deviceId: 0x2021,
        classCode: 0x088000,
        bars: [{ index: 0, type: 'mem64', size: '16K' }],
        capabilities: {
          msi: { vectors: 1 },
          msix: { tableSize: 1, tableBar: 0, tableOffset: 0x2000, pbaBar: 0, pbaOffset: 0x3000 },
          pcie: true,
        },
        driver: 'vfio-pci',
      },
    ],
  });
}

/**
 * Both ports of a dual-port NIC without FLR and with PM NoSoftReset set,
 * behind a root port without ACS: one IOMMU group, no function-level reset
 * at all, so the only reset is a bus reset of both functions — the case
 * QEMU's hot reset path exists for.
 */
export const DUAL_BDFS = ['0000:0a:00.0', '0000:0a:00.1'] as const;

export function dualPortNoFlrHost(): Host {
  return vfioHost({
    bridges: [{ bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, label: 'PCIe Root Port #1' }],
    devices: DUAL_BDFS.map((bdf, fn) =>
      nic82599(bdf, {
        interruptPin: 1 + fn,
        capabilities: {
          pm: { noSoftReset: true },
          msi: { vectors: 1, address64: true, perVectorMask: true },
          msix: { tableSize: 64, tableBar: 4, tableOffset: 0, pbaBar: 4, pbaOffset: 0x2000 },
          pcie: { flr: false, link: { speed: 2, width: 8 } },
        },
      }),
    ),
  });
}

/**
 * A ConnectX-5 PF with SR-IOV (eight VFs possible, none enabled) bound to
 * vfio-pci, behind a root port with ACS: the PF of the SR-IOV selftest.
 */
export const PF_BDF = '0000:3b:00.0';

export function sriovPfHost(): Host {
  return vfioHost({
    bridges: [{ bdf: '0000:00:02.0', kind: 'root-port', secondaryBus: 0x3b, extendedCapabilities: { acs: true } }],
    devices: [
      {
        bdf: PF_BDF,
        label: 'MT27800 Family [ConnectX-5]',
        vendorId: 0x15b3,
        deviceId: 0x1017,
        classCode: 0x020000,
        bars: [{ index: 0, type: 'mem64', size: '32M', prefetchable: true }],
        capabilities: { msix: { tableSize: 64, tableOffset: 0x2000, pbaOffset: 0x3000 } },
        extendedCapabilities: {
          sriov: { totalVfs: 8, numVfs: 0, vfOffset: 1, vfStride: 1, vfDeviceId: 0x1018 },
        },
        driver: 'vfio-pci',
      },
    ],
  });
}
