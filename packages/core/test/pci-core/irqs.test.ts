import { describe, expect, it } from 'vitest';
import {
  Errno,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  pciSetIntxLevel,
  pciSignalMsi,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_REQ_IRQ_INDEX,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSI_FLAGS_ENABLE,
  VFIO_DEVICE_SET_IRQS,
} from '@vfiosim/core';
import { Rig } from './helpers.js';

const TRIGGER_EVENTFD = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD;
const TRIGGER_NONE = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE;
const TRIGGER_BOOL = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_BOOL;

function physCommand(rig: Rig): number {
  return rig.fn.config.read(PCI_COMMAND, 2);
}

function capFlags(rig: Rig, id: number): number {
  for (let pos = rig.fn.config.read(0x34, 1); pos; pos = rig.fn.config.read(pos + 1, 1)) {
    if (rig.fn.config.read(pos, 1) === id) return rig.fn.config.read(pos + 2, 2);
  }
  throw new Error(`no capability ${id}`);
}

describe('VFIO_DEVICE_GET_IRQ_INFO', () => {
  it('describes each index the way vfio-pci does', () => {
    const rig = new Rig({ capabilities: { msi: { vectors: 4 }, msix: { tableSize: 16 } } });
    expect(rig.irqInfo(VFIO_PCI_INTX_IRQ_INDEX).info).toMatchObject({
      flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED,
      count: 1,
    });
    expect(rig.irqInfo(VFIO_PCI_MSI_IRQ_INDEX).info).toMatchObject({ flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, count: 4 });
    // Dynamic MSI-X allocation lets vectors be added while enabled: no NORESIZE.
    expect(rig.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX).info).toMatchObject({ flags: VFIO_IRQ_INFO_EVENTFD, count: 16 });
    expect(rig.irqInfo(VFIO_PCI_ERR_IRQ_INDEX).info).toMatchObject({ flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, count: 1 });
    expect(rig.irqInfo(VFIO_PCI_REQ_IRQ_INDEX).info).toMatchObject({ flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, count: 1 });
  });

  it('counts no INTx for a function without a pin, and no MSI without the capability', () => {
    const rig = new Rig({ interruptPin: 0, capabilities: { msi: false } });
    expect(rig.irqInfo(VFIO_PCI_INTX_IRQ_INDEX).info.count).toBe(0);
    expect(rig.irqInfo(VFIO_PCI_MSI_IRQ_INDEX).info.count).toBe(0);
  });

  it('answers EINVAL past the last index, for ERR on conventional PCI, and for a short argsz', () => {
    const rig = new Rig();
    expect(rig.irqInfo(VFIO_PCI_NUM_IRQS).rc).toBe(-Errno.EINVAL);
    expect(rig.irqInfo(VFIO_PCI_INTX_IRQ_INDEX, 15).rc).toBe(-Errno.EINVAL);
    const pci = new Rig({ capabilities: { pcie: false } });
    expect(pci.irqInfo(VFIO_PCI_ERR_IRQ_INDEX).rc).toBe(-Errno.EINVAL);
  });
});

describe('VFIO_DEVICE_SET_IRQS validation', () => {
  it('rejects a bad index, vectors out of range and unknown flag bits with EINVAL', () => {
    const rig = new Rig();
    const efd = rig.eventfd();
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_NUM_IRQS, 0, 1, [efd.fd])).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 8, 1, [efd.fd])).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 7, 2, [efd.fd, efd.fd])).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_EVENTFD | 0x100, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [efd.fd])).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_MSIX_IRQ_INDEX, 1, 0xfffffffe)).toBe(-Errno.EINVAL);
  });

  it('needs exactly one data type and argsz room for every element', () => {
    const rig = new Rig();
    const efd = rig.eventfd();
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [1], 1)).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [efd.fd, efd.fd], 4, 20 + 7)).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [efd.fd], 4, 19)).toBe(-Errno.EINVAL);
  });

  it('answers ENOTTY for an action the index does not have', () => {
    const rig = new Rig({ capabilities: { msi: { vectors: 2 } } });
    expect(rig.setIrqs(VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1)).toBe(-Errno.ENOTTY);
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_MSI_IRQ_INDEX, 0, 1)).toBe(-Errno.ENOTTY);
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_REQ_IRQ_INDEX, 0, 1)).toBe(-Errno.ENOTTY);
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)).toBe(-Errno.ENOTTY);
  });

  it('answers EBADF for a closed fd and EINVAL for an fd that is not an eventfd, enabling nothing', () => {
    const rig = new Rig();
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [99])).toBe(-Errno.EBADF);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [rig.fd])).toBe(-Errno.EINVAL);
    expect(capFlags(rig, 0x11) & PCI_MSIX_FLAGS_ENABLE).toBe(0);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [99])).toBe(-Errno.EBADF);
  });

  it('faults with EFAULT when the data is not readable', () => {
    const rig = new Rig();
    const bytes = new Uint8Array(20);
    new DataView(bytes.buffer).setUint32(0, 24, true);
    new DataView(bytes.buffer).setUint32(4, TRIGGER_EVENTFD, true);
    new DataView(bytes.buffer).setUint32(8, VFIO_PCI_MSIX_IRQ_INDEX, true);
    new DataView(bytes.buffer).setUint32(16, 1, true);
    const at = rig.scratch + 0x10000n - 20n;
    rig.proc.mem.write(at, bytes);
    expect(rig.proc.ioctl(rig.fd, VFIO_DEVICE_SET_IRQS, at)).toBe(-Errno.EFAULT);
  });
});

describe('MSI-X', () => {
  it('signals a vector eventfd when the device raises the vector', () => {
    const rig = new Rig();
    const a = rig.eventfd();
    const b = rig.eventfd();
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [a.fd, b.fd])).toBe(0);
    expect(capFlags(rig, 0x11) & PCI_MSIX_FLAGS_ENABLE).toBe(PCI_MSIX_FLAGS_ENABLE);
    pciSignalMsi(rig.fn, 1);
    pciSignalMsi(rig.fn, 1);
    pciSignalMsi(rig.fn, 0);
    expect(b.signals()).toBe(2n);
    expect(a.signals()).toBe(1n);
  });

  it('latches a vector raised without an eventfd and delivers it once one is attached', () => {
    const rig = new Rig();
    const a = rig.eventfd();
    const b = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [a.fd, b.fd]);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, [-1])).toBe(0);
    pciSignalMsi(rig.fn, 1);
    expect(b.signals()).toBe(0n);
    expect(rig.fn.msix!.isPending(1)).toBe(true);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, [b.fd])).toBe(0);
    expect(b.signals()).toBe(1n);
    expect(rig.fn.msix!.isPending(1)).toBe(false);
  });

  it('adds a vector beyond those enabled first, since MSI-X vectors can be allocated dynamically', () => {
    const rig = new Rig();
    const a = rig.eventfd();
    const c = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [a.fd]);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 5, 1, [c.fd])).toBe(0);
    pciSignalMsi(rig.fn, 5);
    expect(c.signals()).toBe(1n);
  });

  it('signals the eventfds itself for DATA_NONE and DATA_BOOL (loopback)', () => {
    const rig = new Rig();
    const a = rig.eventfd();
    const b = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [a.fd, b.fd]);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2)).toBe(0);
    expect(rig.setIrqs(TRIGGER_BOOL, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [0, 1], 1)).toBe(0);
    expect(a.signals()).toBe(1n);
    expect(b.signals()).toBe(2n);
  });

  it('disables MSI-X with count 0 and DATA_NONE, after which nothing is signalled', () => {
    const rig = new Rig();
    const a = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [a.fd]);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0)).toBe(0);
    expect(capFlags(rig, 0x11) & PCI_MSIX_FLAGS_ENABLE).toBe(0);
    pciSignalMsi(rig.fn, 0);
    expect(a.signals()).toBe(0n);
    // Loopback needs MSI-X enabled.
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1)).toBe(-Errno.EINVAL);
  });

  it('tears down every vector of the call when one eventfd is bad', () => {
    const rig = new Rig();
    const a = rig.eventfd();
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, [a.fd, 99])).toBe(-Errno.EBADF);
    // The enable of this call is undone too.
    expect(capFlags(rig, 0x11) & PCI_MSIX_FLAGS_ENABLE).toBe(0);
    expect(rig.vdev.irqType).toBe(VFIO_PCI_NUM_IRQS);
  });

  it('refuses another interrupt type while MSI-X is enabled', () => {
    const rig = new Rig();
    const a = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, [a.fd]);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [a.fd])).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, [a.fd])).toBe(-Errno.EINVAL);
  });
});

describe('MSI', () => {
  it('enables the vectors asked for and signals them', () => {
    const rig = new Rig({ capabilities: { msi: { vectors: 4 } } });
    const efds = [rig.eventfd(), rig.eventfd()];
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSI_IRQ_INDEX, 0, 2, efds.map((e) => e.fd))).toBe(0);
    expect(capFlags(rig, 0x05) & PCI_MSI_FLAGS_ENABLE).toBe(PCI_MSI_FLAGS_ENABLE);
    expect(rig.vdev.msiQmax).toBe(1);
    pciSignalMsi(rig.fn, 1);
    expect(efds[1]!.signals()).toBe(1n);
    // Beyond the vectors enabled there is no host interrupt (no dynamic MSI).
    const late = rig.eventfd();
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_MSI_IRQ_INDEX, 3, 1, [late.fd])).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_MSI_IRQ_INDEX, 0, 0)).toBe(0);
    expect(capFlags(rig, 0x05) & PCI_MSI_FLAGS_ENABLE).toBe(0);
  });
});

describe('INTx', () => {
  it('signals once and masks itself until the user unmasks', () => {
    const rig = new Rig();
    const efd = rig.eventfd();
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efd.fd])).toBe(0);
    pciSetIntxLevel(rig.fn, true);
    expect(efd.signals()).toBe(1n);
    expect(physCommand(rig) & PCI_COMMAND_INTX_DISABLE).toBe(PCI_COMMAND_INTX_DISABLE);
    pciSetIntxLevel(rig.fn, true);
    expect(efd.signals()).toBe(0n);
    // Unmasking while the device still asserts re-signals instead of unmasking.
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)).toBe(0);
    expect(efd.signals()).toBe(1n);
    expect(physCommand(rig) & PCI_COMMAND_INTX_DISABLE).toBe(PCI_COMMAND_INTX_DISABLE);
    pciSetIntxLevel(rig.fn, false);
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_BOOL, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [1], 1)).toBe(0);
    expect(physCommand(rig) & PCI_COMMAND_INTX_DISABLE).toBe(0);
    pciSetIntxLevel(rig.fn, true);
    expect(efd.signals()).toBe(1n);
  });

  it('unmasks from an eventfd the user signals', () => {
    const rig = new Rig();
    const efd = rig.eventfd();
    const unmask = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efd.fd]);
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [unmask.fd])).toBe(0);
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [unmask.fd])).toBe(-Errno.EBUSY);
    pciSetIntxLevel(rig.fn, true);
    expect(efd.signals()).toBe(1n);
    pciSetIntxLevel(rig.fn, false);
    const one = new Uint8Array(8);
    one[0] = 1;
    expect(rig.proc.write(unmask.fd, one)).toBe(8);
    expect(physCommand(rig) & PCI_COMMAND_INTX_DISABLE).toBe(0);
    expect(unmask.signals()).toBe(0n);
  });

  it('masks on request, and masking from an eventfd is not implemented', () => {
    const rig = new Rig();
    const efd = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efd.fd]);
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)).toBe(0);
    pciSetIntxLevel(rig.fn, true);
    expect(efd.signals()).toBe(0n);
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efd.fd])).toBe(-Errno.ENOTTY);
  });

  it('follows DisINTx in the virtual command register', () => {
    const rig = new Rig();
    const efd = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efd.fd]);
    rig.cfgWrite(PCI_COMMAND, 2, rig.cfgRead(PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE);
    pciSetIntxLevel(rig.fn, true);
    expect(efd.signals()).toBe(0n);
    rig.cfgWrite(PCI_COMMAND, 2, rig.cfgRead(PCI_COMMAND, 2) & ~PCI_COMMAND_INTX_DISABLE);
    expect(efd.signals()).toBe(1n);
  });

  it('needs INTx enabled for mask and unmask, and vector 0 alone', () => {
    const rig = new Rig();
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_INTX_IRQ_INDEX, 0, 1)).toBe(-Errno.EINVAL);
  });

  it('disables with count 0 and DATA_NONE', () => {
    const rig = new Rig();
    const efd = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, [efd.fd]);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_INTX_IRQ_INDEX, 0, 0)).toBe(0);
    expect(rig.vdev.irqType).toBe(VFIO_PCI_NUM_IRQS);
    pciSetIntxLevel(rig.fn, true);
    expect(efd.signals()).toBe(0n);
  });
});

describe('ERR and REQ', () => {
  it('sets, signals and clears the single eventfd of each', () => {
    const rig = new Rig();
    const err = rig.eventfd();
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_ERR_IRQ_INDEX, 0, 1)).toBe(-Errno.EINVAL);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, [err.fd])).toBe(0);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_ERR_IRQ_INDEX, 0, 1)).toBe(0);
    expect(rig.setIrqs(TRIGGER_BOOL, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, [1], 1)).toBe(0);
    expect(err.signals()).toBe(2n);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_ERR_IRQ_INDEX, 0, 0)).toBe(0);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_ERR_IRQ_INDEX, 0, 1)).toBe(-Errno.EINVAL);
    const req = rig.eventfd();
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, [req.fd])).toBe(0);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, [-2])).toBe(0);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_REQ_IRQ_INDEX, 0, 1)).toBe(0);
    expect(req.signals()).toBe(1n);
    expect(rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, [-1])).toBe(0);
    expect(rig.setIrqs(TRIGGER_NONE, VFIO_PCI_REQ_IRQ_INDEX, 0, 1)).toBe(-Errno.EINVAL);
  });

  it('asks the user through REQ to release the device when it is unbound', async () => {
    const rig = new Rig();
    const req = rig.eventfd();
    rig.setIrqs(TRIGGER_EVENTFD, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, [req.fd]);
    const unbound = rig.host.drivers.unbind(rig.fn as never, rig.host.drivers.driverName(rig.fn as never)!);
    expect(req.signals()).toBe(1n);
    expect(rig.proc.close(rig.fd)).toBe(0);
    await unbound;
    expect(rig.host.drivers.driverName(rig.fn as never)).toBe(null);
  });
});
