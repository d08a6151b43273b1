import { describe, expect, it } from 'vitest';
import {
  buildPlatform,
  ConfigSpace,
  findCapability,
  findExtCapability,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_1,
  PCI_BASE_ADDRESS_2,
  PCI_BASE_ADDRESS_3,
  PCI_BASE_ADDRESS_4,
  PCI_BASE_ADDRESS_5,
  PCI_CAP_ID_EXP,
  PCI_COMMAND,
  PCI_ERR_UNC_POISON_TLP,
  PCI_ERR_UNC_UNSUP,
  PCI_ERR_UNCOR_STATUS,
  PCI_EXP_DEVCAP,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_HEADER_TYPE,
  PCI_ROM_ADDRESS,
  PCI_SRIOV_BAR,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STATUS_DETECTED_PARITY,
  PCI_STATUS_REC_MASTER_ABORT,
  PCI_VENDOR_ID,
  SimError,
} from '@vfiosim/core';
import { richEndpoint, twoFunctionNicNoAcs } from '../fixtures/hosts.js';

/** Sizes a BAR register the way firmware does: save, write all-ones, read back, restore. */
function size(config: ConfigSpace, offset: number): number {
  const saved = config.read32(offset);
  config.write32(offset, 0xffffffff);
  const mask = config.read32(offset);
  config.write32(offset, saved);
  return mask;
}

describe('config space write semantics', () => {
  it('ignores writes to read-only registers and bits', () => {
    const nic = buildPlatform(twoFunctionNicNoAcs).get('0000:0a:00.0');
    nic.config.write16(PCI_VENDOR_ID, 0x1234);
    nic.config.write8(PCI_HEADER_TYPE, 0x00);
    expect(nic.config.read16(PCI_VENDOR_ID)).toBe(0x8086);
    expect(nic.config.read8(PCI_HEADER_TYPE)).toBe(0x80);
    const exp = findCapability(nic.config, PCI_CAP_ID_EXP);
    const devcap = nic.config.read32(exp + PCI_EXP_DEVCAP);
    nic.config.write32(exp + PCI_EXP_DEVCAP, 0);
    expect(nic.config.read32(exp + PCI_EXP_DEVCAP)).toBe(devcap);
  });

  it('keeps only the implemented Command bits of a write', () => {
    const nic = buildPlatform(twoFunctionNicNoAcs).get('0000:0a:00.0');
    nic.config.write16(PCI_COMMAND, 0xffff);
    // I/O, Memory, Bus Master, Parity, SERR, INTx Disable: a PCIe function with an I/O BAR.
    expect(nic.config.read16(PCI_COMMAND)).toBe(0x0547);
  });

  it('clears RW1C status bits written as 1 and leaves the others', () => {
    const nic = buildPlatform(twoFunctionNicNoAcs).get('0000:0a:00.0');
    nic.config.hwUpdate(PCI_STATUS, 2, 0xffff, PCI_STATUS_CAP_LIST | PCI_STATUS_DETECTED_PARITY | PCI_STATUS_REC_MASTER_ABORT);
    nic.config.write16(PCI_STATUS, 0);
    expect(nic.config.read16(PCI_STATUS)).toBe(PCI_STATUS_CAP_LIST | PCI_STATUS_DETECTED_PARITY | PCI_STATUS_REC_MASTER_ABORT);
    nic.config.write16(PCI_STATUS, PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_CAP_LIST);
    expect(nic.config.read16(PCI_STATUS)).toBe(PCI_STATUS_CAP_LIST | PCI_STATUS_DETECTED_PARITY);
  });

  it('clears AER uncorrectable status bits written as 1', () => {
    const nic = buildPlatform(twoFunctionNicNoAcs).get('0000:0a:00.0');
    const aer = findExtCapability(nic.config, PCI_EXT_CAP_ID_ERR);
    nic.config.hwUpdate(aer + PCI_ERR_UNCOR_STATUS, 4, 0xffffffff, PCI_ERR_UNC_POISON_TLP | PCI_ERR_UNC_UNSUP);
    nic.config.write32(aer + PCI_ERR_UNCOR_STATUS, PCI_ERR_UNC_UNSUP);
    expect(nic.config.read32(aer + PCI_ERR_UNCOR_STATUS)).toBe(PCI_ERR_UNC_POISON_TLP);
  });

  it('rejects misaligned and out-of-range accesses', () => {
    const config = new ConfigSpace(256);
    expect(() => config.read(0x05, 2)).toThrow(/not naturally aligned/);
    expect(() => config.read(0x06, 4)).toThrow(SimError);
    expect(() => config.read(0x100, 4)).toThrow(/outside 256 bytes/);
    expect(() => config.read(0, 3 as 4)).toThrow(/1, 2 or 4 bytes/);
    try {
      config.read(0x100, 4);
    } catch (error) {
      expect((error as SimError).code).toBe('OUT_OF_RANGE');
    }
  });

  it('answers all-ones and drops writes while the function does not respond', () => {
    const config = new ConfigSpace(256);
    config.define(0x3c, 1, { value: 0, writable: 0xff });
    config.sealPowerOnState();
    config.setResponding(false);
    config.write8(0x3c, 0x0b);
    expect(config.read32(0)).toBe(0xffffffff);
    expect(config.read16(0x3c)).toBe(0xffff);
    config.setResponding(true);
    expect(config.read8(0x3c)).toBe(0);
  });
});

describe('BAR sizing as hardware does it', () => {
  it('reads back the size mask and flags of 64-bit and I/O BARs', () => {
    const nic = buildPlatform(twoFunctionNicNoAcs).get('0000:0a:00.0');
    const c = nic.config;
    // BAR 0: 512 KiB, 64-bit non-prefetchable; the upper register decodes all 32 bits.
    expect(size(c, PCI_BASE_ADDRESS_0)).toBe(0xfff80004);
    expect(size(c, PCI_BASE_ADDRESS_1)).toBe(0xffffffff);
    // BAR 2: 32 bytes of I/O; bit 0 says I/O.
    expect(size(c, PCI_BASE_ADDRESS_2)).toBe(0xffffffe1);
    // BAR 3 is not implemented: hard-wired 0.
    expect(size(c, PCI_BASE_ADDRESS_3)).toBe(0);
    // BAR 4: 16 KiB, 64-bit.
    expect(size(c, PCI_BASE_ADDRESS_4)).toBe(0xffffc004);
    expect(size(c, PCI_BASE_ADDRESS_5)).toBe(0xffffffff);
  });

  it('sizes 32-bit prefetchable BARs and 64-bit BARs larger than 4 GiB', () => {
    const fn = buildPlatform({
      bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 1 }],
      devices: [
        {
          bdf: '0000:01:00.0',
          vendorId: 0x10de,
          deviceId: 0x20b0,
          bars: [
            { index: 0, type: 'mem32', size: '4K', prefetchable: true },
            { index: 2, type: 'mem64', size: '8G', prefetchable: true },
          ],
        },
      ],
    }).get('0000:01:00.0');
    expect(size(fn.config, PCI_BASE_ADDRESS_0)).toBe(0xfffff008);
    // 8 GiB: no address bit of the low dword is decoded, bit 33 up in the high one.
    expect(size(fn.config, PCI_BASE_ADDRESS_2)).toBe(0x0000000c);
    expect(size(fn.config, PCI_BASE_ADDRESS_3)).toBe(0xfffffffe);
  });

  it('keeps the assigned address after sizing restores it', () => {
    const nic = buildPlatform(twoFunctionNicNoAcs).get('0000:0a:00.0');
    const before = nic.config.read32(PCI_BASE_ADDRESS_0);
    size(nic.config, PCI_BASE_ADDRESS_0);
    expect(nic.config.read32(PCI_BASE_ADDRESS_0)).toBe(before);
    expect(BigInt((before & 0xfffffff0) >>> 0)).toBe(nic.bars[0]!.address & 0xffffffffn);
  });

  it('sizes the expansion ROM with its enable bit writable', () => {
    const fn = buildPlatform(richEndpoint).get('0000:17:00.0');
    expect(size(fn.config, PCI_ROM_ADDRESS)).toBe(0xffff0001);
  });

  it('sizes VF BARs through the SR-IOV capability', () => {
    const fn = buildPlatform(richEndpoint).get('0000:17:00.0');
    const sriov = findExtCapability(fn.config, PCI_EXT_CAP_ID_SRIOV);
    expect(size(fn.config, sriov + PCI_SRIOV_BAR)).toBe(0xffff000c);
    expect(size(fn.config, sriov + PCI_SRIOV_BAR + 4)).toBe(0xffffffff);
  });
});
