import { createHost, mockIommu, type Host, type HostDescription, type VfioSimPlugin } from '@vfiosim/core';
import { vfioPci } from '@vfiosim/vfio-pci';
import { toyDmaDevice } from './device-model.js';

/** The functions the demo works with. */
export const NIC0 = '0000:0a:00.0';
export const NIC1 = '0000:0a:00.1';
export const NVME = '0000:03:00.0';
export const HOST_NVME = '0000:04:00.0';

const hostBridge = {
  bdf: '0000:00:00.0',
  label: 'Host bridge',
  vendorId: 0x8086,
  deviceId: 0x2020,
  classCode: 0x060000,
  interruptPin: 0,
  bars: [],
  capabilities: { pm: false, msi: false, msix: false, pcie: false },
};

const nicPort = (fn: number) => ({
  bdf: `0000:0a:00.${fn}`,
  label: '82599ES 10-Gigabit SFI/SFP+ Network Connection',
  vendorId: 0x8086,
  deviceId: 0x10fb,
  classCode: 0x020000,
  subsystemVendorId: 0x8086,
  subsystemId: 0x000c,
  revision: 0x01,
  interruptPin: 1 + fn,
  multifunction: true,
  bars: [
    { index: 0, type: 'mem64' as const, size: '512K' },
    { index: 2, type: 'io' as const, size: 32 },
    { index: 4, type: 'mem64' as const, size: '16K' },
  ],
  capabilities: {
    msi: { vectors: 1 as const },
    msix: { tableSize: 64, tableBar: 4, tableOffset: 0, pbaBar: 4, pbaOffset: 0x2000 },
    pcie: { link: { speed: 2 as const, width: 8 as const } },
  },
  driver: 'vfio-pci',
});

const nvme = (bdf: string, driver?: string) => ({
  bdf,
  label: 'NVMe SSD Controller PM1733',
  vendorId: 0x144d,
  deviceId: 0xa824,
  classCode: 0x010802,
  subsystemVendorId: 0x144d,
  subsystemId: 0xa812,
  bars: [{ index: 0, type: 'mem64' as const, size: '32K' }],
  capabilities: {
    msix: { tableSize: 32, tableBar: 0, tableOffset: 0x2000, pbaBar: 0, pbaOffset: 0x3000 },
    pcie: { link: { speed: 4 as const, width: 4 as const } },
  },
  ...(driver && { driver }),
});

/**
 * A small server:
 * - root port 00:1c.0 without ACS, a dual-port 82599 NIC behind it: both
 *   ports and the port share IOMMU group; a hot reset resets bus 0a, both
 *   ports. Both ports are given to vfio-pci.
 * - root port 00:01.0 with ACS, a PCIe switch below it, an NVMe drive on
 *   each of two downstream ports (ACS everywhere: one group per drive).
 *   The first drive goes to vfio-pci, the second stays with the host's
 *   nvme driver, in a hot-plug slot.
 */
export const demoHostDescription: HostDescription = {
  bridges: [
    { bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 0x01, label: 'PCIe Root Port #1', extendedCapabilities: { acs: true } },
    { bdf: '0000:00:1c.0', kind: 'root-port', secondaryBus: 0x0a, label: 'PCIe Root Port #5' },
    { bdf: '0000:01:00.0', kind: 'upstream-port', secondaryBus: 0x02, label: 'PEX 8747 upstream port' },
    { bdf: '0000:02:00.0', kind: 'downstream-port', secondaryBus: 0x03, extendedCapabilities: { acs: true } },
    { bdf: '0000:02:01.0', kind: 'downstream-port', secondaryBus: 0x04, slot: { number: 5 }, extendedCapabilities: { acs: true } },
  ],
  devices: [hostBridge, nicPort(0), nicPort(1), nvme(NVME, 'vfio-pci'), nvme(HOST_NVME)],
};

/** A host kernel driver for the second drive: it binds by id and uses the kernel DMA API. */
export function nvmeHostDriver(): VfioSimPlugin {
  return {
    name: 'nvme',
    apply(host) {
      host.drivers.registerPciDriver({ name: 'nvme', idTable: [{ vendor: 0x144d, device: 0xa824 }], probe() {}, remove() {} });
    },
  };
}

/** The demo's host, with the toy DMA engine behind the vfio-pci NVMe's BAR 0 and the stale-translation detector on. */
export function createDemoHost(): Host {
  return createHost(demoHostDescription, {
    plugins: [mockIommu(), vfioPci(), nvmeHostDriver(), toyDmaDevice(NVME)],
    detectStaleTranslations: true,
  });
}
