import { describe, expect, it } from 'vitest';
import {
  Errno,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_1,
  PCI_BASE_ADDRESS_2,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MEMORY,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_DEVCTL_READRQ,
  PCI_EXT_CAP_ID_ATS,
  PCI_EXT_CAP_ID_ERR,
  PCI_INTERRUPT_PIN,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_PM_CAP_PME_MASK,
  PCI_PM_CTRL,
  PCI_PM_PMC,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_SIG_TARGET_ABORT,
  PCI_VENDOR_ID,
  pciExtCapId,
  pciExtCapNext,
} from '@vfiosim/core';
import { CONFIG, Rig } from './helpers.js';

/** The standard capabilities the user sees, by walking the list through the config region. */
function userCaps(rig: Rig): Map<number, number> {
  const caps = new Map<number, number>();
  if (!(rig.cfgRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return caps;
  for (let pos = rig.cfgRead(PCI_CAPABILITY_LIST, 1); pos; pos = rig.cfgRead(pos + 1, 1)) caps.set(rig.cfgRead(pos, 1), pos);
  return caps;
}

/** The extended capabilities the user sees, walking from 0x100. */
function userExtCaps(rig: Rig): Array<{ id: number; at: number }> {
  const caps: Array<{ id: number; at: number }> = [];
  for (let at = 0x100; at; ) {
    const header = rig.cfgRead(at, 4);
    if (!header) break;
    caps.push({ id: pciExtCapId(header), at });
    at = pciExtCapNext(header);
  }
  return caps;
}

describe('config space through the config region', () => {
  it('reads the function identity the way the hardware reports it', () => {
    const rig = new Rig({ vendorId: 0x8086, deviceId: 0x1234 });
    expect(rig.cfgRead(PCI_VENDOR_ID, 4)).toBe(0x12348086);
    expect(rig.cfgRead(PCI_VENDOR_ID, 2)).toBe(0x8086);
    expect(rig.cfgRead(PCI_VENDOR_ID + 1, 1)).toBe(0x80);
  });

  it('sizes a 64-bit BAR on the virtual registers and leaves the real ones alone', () => {
    const rig = new Rig({ bars: [{ index: 0, type: 'mem64', size: '16K' }] });
    const assigned = rig.fn.config.read(PCI_BASE_ADDRESS_0, 4);
    expect(rig.cfgWrite(PCI_BASE_ADDRESS_0, 4, 0xffffffff)).toBe(4);
    expect(rig.cfgWrite(PCI_BASE_ADDRESS_1, 4, 0xffffffff)).toBe(4);
    expect(rig.cfgRead(PCI_BASE_ADDRESS_0)).toBe(0xffffc004);
    expect(rig.cfgRead(PCI_BASE_ADDRESS_1)).toBe(0xffffffff);
    expect(rig.fn.config.read(PCI_BASE_ADDRESS_0, 4)).toBe(assigned);
    expect(rig.cfgWrite(PCI_BASE_ADDRESS_0, 4, 0xfe000000)).toBe(4);
    expect(rig.cfgRead(PCI_BASE_ADDRESS_0)).toBe(0xfe000004);
  });

  it('reports an unimplemented BAR and a prefetchable 32-bit BAR as hardware would', () => {
    const rig = new Rig({
      bars: [
        { index: 0, type: 'mem32', size: '4K', prefetchable: true },
        { index: 3, type: 'io', size: 64 },
      ],
    });
    rig.cfgWrite(PCI_BASE_ADDRESS_0, 4, 0xffffffff);
    rig.cfgWrite(PCI_BASE_ADDRESS_1, 4, 0xffffffff);
    rig.cfgWrite(PCI_BASE_ADDRESS_0 + 12, 4, 0xffffffff);
    expect(rig.cfgRead(PCI_BASE_ADDRESS_0)).toBe(0xfffff008);
    expect(rig.cfgRead(PCI_BASE_ADDRESS_1)).toBe(0);
    expect(rig.cfgRead(PCI_BASE_ADDRESS_2)).toBe(0);
    expect(rig.cfgRead(PCI_BASE_ADDRESS_0 + 12)).toBe(0xffffffc1);
  });

  it('sizes the ROM BAR with its enable bit and shows no ROM for a function without one', () => {
    const rig = new Rig({ romSize: '64K' });
    rig.cfgWrite(PCI_ROM_ADDRESS, 4, 0xffffffff);
    expect(rig.cfgRead(PCI_ROM_ADDRESS)).toBe(0xffff0001);
    const bare = new Rig();
    bare.cfgWrite(PCI_ROM_ADDRESS, 4, 0xffffffff);
    expect(bare.cfgRead(PCI_ROM_ADDRESS)).toBe(0);
  });

  it("virtualizes DisINTx as vfio's INTx mask while Memory Space reaches the function", () => {
    const rig = new Rig();
    expect(rig.cfgWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE)).toBe(2);
    expect(rig.cfgRead(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE).toBe(PCI_COMMAND_INTX_DISABLE);
    expect(rig.vdev.virqDisabled).toBe(true);
    // With INTx not in use the function's DisINTx just follows the user's.
    expect(rig.fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE).toBe(PCI_COMMAND_INTX_DISABLE);
    expect(rig.fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(0);
    rig.cfgWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    expect(rig.fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(PCI_COMMAND_MEMORY);
    expect(rig.fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE).toBe(0);
    expect(rig.vdev.virqDisabled).toBe(false);
  });

  it('drops writes to read-only status and identity registers', () => {
    const rig = new Rig();
    rig.fn.config.hwUpdate(PCI_STATUS, 2, PCI_STATUS_SIG_TARGET_ABORT, PCI_STATUS_SIG_TARGET_ABORT);
    expect(rig.cfgWrite(PCI_STATUS, 2, 0xffff)).toBe(2);
    expect(rig.fn.config.read(PCI_STATUS, 2) & PCI_STATUS_SIG_TARGET_ABORT).toBe(PCI_STATUS_SIG_TARGET_ABORT);
    expect(rig.cfgWrite(PCI_VENDOR_ID, 4, 0)).toBe(4);
    expect(rig.cfgRead(PCI_VENDOR_ID, 2)).toBe(0x1af4);
    expect(rig.cfgWrite(PCI_INTERRUPT_PIN, 1, 3)).toBe(1);
    expect(rig.cfgRead(PCI_INTERRUPT_PIN, 1)).toBe(1);
  });

  it('shows the exposed capabilities and unlinks the ones vfio hides', () => {
    const rig = new Rig({ extendedCapabilities: { aer: true, pasid: true, ats: true } });
    expect([...userCaps(rig).keys()].sort()).toEqual([PCI_CAP_ID_PM, PCI_CAP_ID_MSI, PCI_CAP_ID_EXP, PCI_CAP_ID_MSIX].sort());
    expect(userExtCaps(rig).map((c) => c.id)).toEqual([PCI_EXT_CAP_ID_ERR, PCI_EXT_CAP_ID_ATS]);
  });

  it('keeps a hidden capability that opens the extended list as an anchor with id and version zeroed', () => {
    const rig = new Rig({ extendedCapabilities: { pasid: { offset: 0x100 }, aer: { offset: 0x200 } } });
    const header = rig.cfgRead(0x100, 4);
    expect(header & 0xfffff).toBe(0);
    expect(pciExtCapNext(header)).toBe(0x200);
    expect(pciExtCapId(rig.cfgRead(0x200, 4))).toBe(PCI_EXT_CAP_ID_ERR);
    // The hidden capability's registers behind the anchor are the function's own.
    expect(rig.cfgRead(0x104, 4)).toBe(rig.fn.config.read(0x104, 4));
  });

  it('hides PME from the user in the power management capability', () => {
    const rig = new Rig();
    const pm = userCaps(rig).get(PCI_CAP_ID_PM)!;
    expect(rig.fn.config.read(pm + PCI_PM_PMC, 2) & PCI_PM_CAP_PME_MASK).not.toBe(0);
    expect(rig.cfgRead(pm + PCI_PM_PMC, 2) & PCI_PM_CAP_PME_MASK).toBe(0);
  });

  it('moves the function to D3hot through PMCSR, after which BAR access fails with EIO', () => {
    const rig = new Rig({ capabilities: { pm: { noSoftReset: true } } });
    rig.cfgWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    const pm = userCaps(rig).get(PCI_CAP_ID_PM)!;
    expect(rig.cfgWrite(pm + PCI_PM_CTRL, 2, 3)).toBe(2);
    expect(rig.fn.powerState).toBe('D3hot');
    expect(rig.proc.pread(rig.fd, new Uint8Array(4), 0n)).toBe(-Errno.EIO);
    rig.cfgWrite(pm + PCI_PM_CTRL, 2, 0);
    expect(rig.fn.powerState).toBe('D0');
    expect(rig.proc.pread(rig.fd, new Uint8Array(4), 0n)).toBe(4);
  });

  it('virtualizes the MSI address and keeps MSI Enable off until MSI is enabled by ioctl', () => {
    const rig = new Rig({ capabilities: { msi: { vectors: 4 } } });
    const msi = userCaps(rig).get(PCI_CAP_ID_MSI)!;
    // Multiple Message Capable shows the function's four vectors.
    expect((rig.cfgRead(msi + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_QMASK) >> 1).toBe(2);
    expect(rig.cfgWrite(msi + PCI_MSI_ADDRESS_LO, 4, 0xfee01000)).toBe(4);
    expect(rig.cfgRead(msi + PCI_MSI_ADDRESS_LO)).toBe(0xfee01000);
    expect(rig.fn.config.read(msi + PCI_MSI_ADDRESS_LO, 4)).toBe(0);
    rig.cfgWrite(msi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | (2 << 4));
    const flags = rig.cfgRead(msi + PCI_MSI_FLAGS, 2);
    expect(flags & PCI_MSI_FLAGS_ENABLE).toBe(0);
    // Multiple Message Enable is capped at what vfio enabled: nothing yet.
    expect(flags & PCI_MSI_FLAGS_QSIZE).toBe(0);
    // The whole low byte is the user's, Multiple Message Capable included: it reads back as written.
    expect(flags & PCI_MSI_FLAGS_QMASK).toBe(0);
  });

  it('leaves the MSI-X capability read-only', () => {
    const rig = new Rig();
    const msix = userCaps(rig).get(PCI_CAP_ID_MSIX)!;
    expect(rig.cfgWrite(msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE)).toBe(2);
    expect(rig.cfgRead(msix + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE).toBe(0);
    expect(rig.fn.config.read(msix + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE).toBe(0);
  });

  it('virtualizes Max Payload Size and turns the FLR bit into a function reset that reads back 0', () => {
    const rig = new Rig();
    const exp = userCaps(rig).get(PCI_CAP_ID_EXP)!;
    const physPayload = rig.fn.config.read(exp + PCI_EXP_DEVCTL, 2) & PCI_EXP_DEVCTL_PAYLOAD;
    rig.cfgWrite(exp + PCI_EXP_DEVCTL, 2, (rig.cfgRead(exp + PCI_EXP_DEVCTL, 2) & ~PCI_EXP_DEVCTL_PAYLOAD) | (2 << 5));
    expect(rig.cfgRead(exp + PCI_EXP_DEVCTL, 2) & PCI_EXP_DEVCTL_PAYLOAD).toBe(2 << 5);
    expect(rig.fn.config.read(exp + PCI_EXP_DEVCTL, 2) & PCI_EXP_DEVCTL_PAYLOAD).toBe(physPayload);
    const resets = rig.fn.resetCount;
    rig.cfgWrite(exp + PCI_EXP_DEVCTL, 2, rig.cfgRead(exp + PCI_EXP_DEVCTL, 2) | PCI_EXP_DEVCTL_BCR_FLR);
    expect(rig.fn.resetCount).toBe(resets + 1);
    expect(rig.fn.lastReset).toBe('flr');
    expect(rig.cfgRead(exp + PCI_EXP_DEVCTL, 2) & PCI_EXP_DEVCTL_BCR_FLR).toBe(0);
  });

  it('passes a larger MRRS to the function but never below its MPS', () => {
    const rig = new Rig({ capabilities: { pcie: { maxPayload: 256 } } });
    const exp = userCaps(rig).get(PCI_CAP_ID_EXP)!;
    const at = exp + PCI_EXP_DEVCTL;
    rig.fn.config.write(at, 2, (rig.fn.config.read(at, 2) & ~PCI_EXP_DEVCTL_PAYLOAD) | (1 << 5));
    rig.cfgWrite(at, 2, (rig.cfgRead(at, 2) & ~PCI_EXP_DEVCTL_READRQ) | (3 << 12));
    expect(rig.fn.config.read(at, 2) & PCI_EXP_DEVCTL_READRQ).toBe(3 << 12);
    rig.cfgWrite(at, 2, rig.cfgRead(at, 2) & ~PCI_EXP_DEVCTL_READRQ);
    expect(rig.cfgRead(at, 2) & PCI_EXP_DEVCTL_READRQ).toBe(0);
    expect(rig.fn.config.read(at, 2) & PCI_EXP_DEVCTL_READRQ).toBe(1 << 12);
  });

  it('splits unaligned and capability-crossing accesses into aligned chunks', () => {
    const rig = new Rig({ vendorId: 0x8086, deviceId: 0x1234 });
    const buf = new Uint8Array(7);
    expect(rig.proc.pread(rig.fd, buf, CONFIG + 1n)).toBe(7);
    const whole = new Uint8Array(8);
    rig.proc.pread(rig.fd, whole, CONFIG);
    expect([...buf]).toEqual([...whole.subarray(1)]);
    const pm = userCaps(rig).get(PCI_CAP_ID_PM)!;
    const span = new Uint8Array(16);
    expect(rig.proc.pread(rig.fd, span, CONFIG + BigInt(pm - 4))).toBe(16);
    expect(span[4]).toBe(PCI_CAP_ID_PM);
  });

  it('fails an access that runs past the end of config space with EFAULT', () => {
    const rig = new Rig();
    expect(rig.proc.pread(rig.fd, new Uint8Array(8), CONFIG + 0xffcn)).toBe(-Errno.EFAULT);
    expect(rig.proc.pwrite(rig.fd, new Uint8Array(2), CONFIG + 0x1000n)).toBe(-Errno.EFAULT);
    expect(rig.proc.pread(rig.fd, new Uint8Array(4), CONFIG + 0xffcn)).toBe(4);
  });

  it('only has 256 bytes of config space for a conventional PCI function', () => {
    const rig = new Rig({ capabilities: { pcie: false } });
    expect(rig.regionInfo(7).info.size).toBe(256n);
    expect(rig.cfgRead(0xfc, 4)).toBeGreaterThanOrEqual(0);
    expect(rig.cfgRead(0x100, 4)).toBe(-Errno.EFAULT);
  });
});
