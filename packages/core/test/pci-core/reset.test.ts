import { describe, expect, it } from 'vitest';
import {
  Errno,
  PCI_BASE_ADDRESS_0,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_NUM_VF,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_MSIX_IRQ_INDEX,
  findExtCapability,
  pciSignalMsi,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_DEVICE_RESET,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_INTX_IRQ_INDEX,
  pciSetIntxLevel,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  vfioPciIndexToOffset,
  VfioPciCoreDevice,
} from '@vfiosim/core';
import { Rig } from './helpers.js';

const BAR0 = vfioPciIndexToOffset(VFIO_PCI_BAR0_REGION_INDEX);

function reset(rig: Rig): number {
  return rig.proc.ioctl(rig.fd, VFIO_DEVICE_RESET, 0n);
}

describe('VFIO_DEVICE_RESET', () => {
  it('resets the device by FLR and restores the config state the user had', () => {
    const rig = new Rig();
    const data = new Uint8Array([0xaa, 0xbb, 0xcc, 0xdd]);
    rig.proc.pwrite(rig.fd, data, BAR0 + 0x10n);
    const bar = rig.fn.config.read(PCI_BASE_ADDRESS_0, 4);
    const before = rig.fn.resetCount;
    expect(reset(rig)).toBe(0);
    expect(rig.fn.resetCount).toBe(before + 1);
    expect(rig.fn.lastReset).toBe('flr');
    // The device's own state is gone; its BARs and decode are back.
    expect(rig.fn.config.read(PCI_BASE_ADDRESS_0, 4)).toBe(bar);
    expect(rig.fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(PCI_COMMAND_MEMORY);
    const back = new Uint8Array(4);
    expect(rig.proc.pread(rig.fd, back, BAR0 + 0x10n)).toBe(4);
    expect([...back]).toEqual([0, 0, 0, 0]);
  });

  it('falls back to a PM reset for a function without FLR that resets on D3hot->D0', () => {
    const rig = new Rig({ capabilities: { pcie: { flr: false }, pm: { noSoftReset: false } } });
    expect(rig.deviceInfo().info.flags & VFIO_DEVICE_FLAGS_RESET).toBe(VFIO_DEVICE_FLAGS_RESET);
    expect(reset(rig)).toBe(0);
    expect(rig.fn.lastReset).toBe('pm');
  });

  it('uses a bus reset only for a function alone below its bridge', () => {
    const bridges = [{ bdf: '0000:00:01.0', kind: 'root-port' as const, secondaryBus: 1 }];
    const alone = new Rig({ bdf: '0000:01:00.0', capabilities: { pcie: { flr: false }, pm: { noSoftReset: true } } }, { description: { bridges } });
    expect(reset(alone)).toBe(0);
    expect(alone.fn.lastReset).toBe('bus');
    const shared = new Rig(
      { bdf: '0000:01:00.0', multifunction: true, capabilities: { pcie: { flr: false }, pm: { noSoftReset: true } } },
      { description: { bridges, devices: [{ bdf: '0000:01:00.1', vendorId: 0x1af4, deviceId: 0x1041 }] } },
    );
    expect(shared.deviceInfo().info.flags & VFIO_DEVICE_FLAGS_RESET).toBe(0);
    expect(reset(shared)).toBe(-Errno.EINVAL);
  });

  it('answers EINVAL when no reset method worked at open', () => {
    const rig = new Rig({ capabilities: { pcie: { flr: false }, pm: { noSoftReset: true } } });
    expect(reset(rig)).toBe(-Errno.EINVAL);
  });

  it('keeps INTx forwarding working across a reset', () => {
    const rig = new Rig();
    const efd = rig.eventfd();
    rig.setIrqs(VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efd.fd]);
    expect(reset(rig)).toBe(0);
    pciSetIntxLevel(rig.fn, true);
    expect(efd.signals()).toBe(1n);
  });

  it('makes BAR mappings fault for the duration of the reset', () => {
    const rig = new Rig();
    const va = rig.proc.mmap(0x4000, { fd: rig.fd, offset: BAR0 });
    const seen: number[] = [];
    rig.vdev.hooks.reset.tap({ name: 'probe' }, () => {
      seen.push(rig.proc.mem.readU32(va));
    });
    expect(reset(rig)).toBe(0);
    expect(seen).toEqual([-Errno.EFAULT]);
    expect(rig.proc.mem.readU32(va)).toBe(0);
  });
});

describe('what restoring a function after a reset puts back', () => {
  const TRIGGER_EVENTFD = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD;
  const TRIGGER_NONE = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE;
  const POWER_ON_ENTRY = { address: 0n, data: 0, masked: true };

  it('rewrites only the MSI-X vectors the host allocated; the other entries keep their power-on values', () => {
    const rig = new Rig();
    const a = rig.eventfd();
    const b = rig.eventfd();
    // Vector 1 gets a host message, then MSI-X is disabled and enabled again with vector 0 alone:
    // entry 1 still holds the old message in the table, but no descriptor any more.
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [a.fd, b.fd])).toBe(0);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0)).toBe(0);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [a.fd])).toBe(0);
    const vector0 = rig.fn.msix!.entry(0);
    expect(rig.fn.msix!.entry(1)).not.toEqual(POWER_ON_ENTRY);

    expect(reset(rig)).toBe(0);
    expect(rig.fn.msix!.entry(0)).toEqual(vector0);
    expect(rig.fn.msix!.entry(1)).toEqual(POWER_ON_ENTRY);
    pciSignalMsi(rig.fn, 0);
    expect(a.signals()).toBe(1n);
  });

  it('does not turn Memory Space on to rewrite the MSI-X table, so a function that does not decode memory keeps its entries masked', () => {
    const rig = new Rig();
    const a = rig.eventfd();
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [a.fd])).toBe(0);
    const cmd = rig.cfgRead(PCI_COMMAND, 2);
    expect(rig.cfgWrite(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MEMORY)).toBe(2);
    const commandWrites: number[] = [];
    rig.fn.config.watch(PCI_COMMAND, 2, (write) => commandWrites.push(write.value));

    expect(reset(rig)).toBe(0);
    expect(commandWrites.filter((value) => value & PCI_COMMAND_MEMORY)).toEqual([]);
    expect(rig.fn.config.hwRead(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(0);
    // The kernel's MMIO writes to the table do not reach a function that does not decode memory.
    expect(rig.fn.msix!.entry(0)).toEqual(POWER_ON_ENTRY);
    pciSignalMsi(rig.fn, 0);
    expect(a.signals()).toBe(0n);
  });

  describe('SR-IOV, which pci_restore_iov_state takes from the host\'s own record', () => {
    // vfio-pci-core refuses to bind a PF whose VFs are enabled, so the VFs come after the bind,
    // as sriov_numvfs on a PF bound to vfio-pci enables them.
    const sriovPf = { extendedCapabilities: { sriov: { totalVfs: 2 } } };

    function sriovState(rig: Rig): { vfEnable: boolean; numVfs: number } {
      const pos = findExtCapability(rig.fn.config, PCI_EXT_CAP_ID_SRIOV);
      return {
        vfEnable: (rig.fn.config.hwRead(pos + PCI_SRIOV_CTRL, 2) & PCI_SRIOV_CTRL_VFE) !== 0,
        numVfs: rig.fn.config.hwRead(pos + PCI_SRIOV_NUM_VF, 2),
      };
    }

    it('brings back the VFs the host had enabled on a PF that FLR took them from', () => {
      const rig = new Rig(sriovPf);
      rig.host.platform.topology.enableSriov(rig.fn, 2);
      expect(reset(rig)).toBe(0);
      expect(rig.fn.lastReset).toBe('flr');
      expect(sriovState(rig)).toEqual({ vfEnable: true, numVfs: 2 });
      expect(rig.fn.virtfns).toHaveLength(2);
    });

    it('does not bring back VFs the host disabled after the state was saved', () => {
      const rig = new Rig(sriovPf);
      expect(rig.proc.close(rig.fd)).toBe(0);
      rig.host.platform.topology.enableSriov(rig.fn, 2);
      // The first open saves the state with VF Enable set; the host then disables SR-IOV.
      const fd = rig.openCdev(rig.vdev);
      rig.host.platform.topology.disableSriov(rig.fn);
      // The last close resets the function and restores the state saved at open.
      const before = rig.fn.resetCount;
      expect(rig.proc.close(fd)).toBe(0);
      expect(rig.fn.resetCount).toBe(before + 1);
      expect(sriovState(rig)).toEqual({ vfEnable: false, numVfs: 0 });
      expect(rig.fn.virtfns).toHaveLength(0);
    });
  });

  describe('the device TLB (ATC), which every reset empties', () => {
    function atcWithEntry(rig: Rig) {
      const atc = rig.host.iommu.iommuFor(rig.fn)!.deviceTlb(rig.fn)!;
      atc.insert(null, 0x10000n, 0x200000n, 4096n, 3);
      expect(atc.size).toBe(1);
      return atc;
    }

    it('is empty after VFIO_DEVICE_RESET by FLR', () => {
      const rig = new Rig({ extendedCapabilities: { ats: true } });
      const atc = atcWithEntry(rig);
      expect(reset(rig)).toBe(0);
      expect(rig.fn.lastReset).toBe('flr');
      expect(atc.size).toBe(0);
    });

    it('is empty after VFIO_DEVICE_RESET by a PM reset', () => {
      const rig = new Rig({ capabilities: { pcie: { flr: false }, pm: { noSoftReset: false } }, extendedCapabilities: { ats: true } });
      const atc = atcWithEntry(rig);
      expect(reset(rig)).toBe(0);
      expect(rig.fn.lastReset).toBe('pm');
      expect(atc.size).toBe(0);
    });

    it('is empty after a reset nobody in vfio asked for (an FLR written to the function directly)', () => {
      const rig = new Rig({ extendedCapabilities: { ats: true } });
      const atc = atcWithEntry(rig);
      rig.fn.flr();
      expect(atc.size).toBe(0);
    });
  });
});

describe('hot reset', () => {
  const bridges = [{ bdf: '0000:00:01.0', kind: 'root-port' as const, secondaryBus: 1 }];

  function hotResetInfo(rig: Rig, argsz: number) {
    rig.proc.mem.write(rig.scratch, vfio_pci_hot_reset_info.encodeNew({ argsz }));
    const rc = rig.proc.ioctl(rig.fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, rig.scratch);
    const bytes = rig.proc.mem.read(rig.scratch, Math.max(argsz, 12)) as Uint8Array;
    return { rc, hdr: vfio_pci_hot_reset_info.decode(bytes), bytes };
  }

  it('lists the functions a bus reset reaches by iommufd device id for a cdev-opened device', () => {
    const rig = new Rig({ bdf: '0000:01:00.0' }, { description: { bridges } });
    const short = hotResetInfo(rig, 12);
    expect(short.rc).toBe(-Errno.ENOSPC);
    expect(short.hdr.count).toBe(1);
    const { rc, hdr, bytes } = hotResetInfo(rig, 20);
    expect(rc).toBe(0);
    expect(hdr.flags).toBe(VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED);
    const entry = vfio_pci_dependent_device.decode(bytes, 12);
    expect(entry).toMatchObject({ segment: 0, bus: 1, devfn: 0, devid: rig.vdev.iommufdDevice!.devId });
  });

  it('answers ENODEV for a function on a root bus, which neither a slot nor a bus reset reaches', () => {
    const rig = new Rig();
    expect(hotResetInfo(rig, 64).rc).toBe(-Errno.ENODEV);
  });

  it('resets the bus for a cdev-opened device with an empty group list, running the reset hooks', () => {
    const rig = new Rig({ bdf: '0000:01:00.0' }, { description: { bridges } });
    const causes: string[] = [];
    rig.vdev.hooks.reset.tap({ name: 'probe' }, ({ cause, method }) => {
      causes.push(`${cause}:${method}`);
    });
    rig.proc.mem.write(rig.scratch, vfio_pci_hot_reset.encodeNew({ argsz: 12, flags: 0, count: 0 }));
    expect(rig.proc.ioctl(rig.fd, VFIO_DEVICE_PCI_HOT_RESET, rig.scratch)).toBe(0);
    expect(rig.fn.lastReset).toBe('bus');
    expect(causes).toEqual(['hot-reset:bus']);
  });

  it('rejects flags, group fds from a cdev-opened device, and a reset reaching a function vfio does not own', () => {
    const rig = new Rig({ bdf: '0000:01:00.0' }, { description: { bridges } });
    rig.proc.mem.write(rig.scratch, vfio_pci_hot_reset.encodeNew({ argsz: 12, flags: 1, count: 0 }));
    expect(rig.proc.ioctl(rig.fd, VFIO_DEVICE_PCI_HOT_RESET, rig.scratch)).toBe(-Errno.EINVAL);
    rig.proc.mem.write(rig.scratch, vfio_pci_hot_reset.encodeNew({ argsz: 16, flags: 0, count: 1 }));
    expect(rig.proc.ioctl(rig.fd, VFIO_DEVICE_PCI_HOT_RESET, rig.scratch)).toBe(-Errno.EINVAL);

    const crowded = new Rig(
      { bdf: '0000:01:00.0', multifunction: true },
      { description: { bridges, devices: [{ bdf: '0000:01:00.1', vendorId: 0x1af4, deviceId: 0x1041 }] } },
    );
    crowded.proc.mem.write(crowded.scratch, vfio_pci_hot_reset.encodeNew({ argsz: 12, flags: 0, count: 0 }));
    expect(crowded.proc.ioctl(crowded.fd, VFIO_DEVICE_PCI_HOT_RESET, crowded.scratch)).toBe(-Errno.EINVAL);
    expect(crowded.vdev).toBeInstanceOf(VfioPciCoreDevice);
  });
});
