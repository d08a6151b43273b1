import { describe, expect, it } from 'vitest';
import {
  buildPlatform,
  findCapability,
  findExtCapability,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_1,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_ERR_UNC_POISON_TLP,
  PCI_ERR_UNCOR_MASK,
  PCI_ERR_UNCOR_STATUS,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_DEVCTL_URRE,
  PCI_EXT_CAP_ID_ERR,
  PCI_INTERRUPT_LINE,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_ENABLE,
  PCI_PM_CTRL,
  PCI_ROM_ADDRESS,
  PCI_ROM_ADDRESS_ENABLE,
  SimError,
  type BarHandler,
  type HostDescription,
  type PciFunction,
  type ResetEvent,
} from '@vfiosim/core';
import { richEndpoint, twoFunctionNicNoAcs } from '../fixtures/hosts.js';

function nic(): PciFunction {
  return buildPlatform(twoFunctionNicNoAcs).get('0000:0a:00.0');
}

function rich(): PciFunction {
  return buildPlatform(richEndpoint).get('0000:17:00.0');
}

/** Programs state a driver would: decoding, bus mastering, MSI, an IRQ line. */
function program(fn: PciFunction): void {
  fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  const msi = findCapability(fn.config, PCI_CAP_ID_MSI);
  fn.config.write16(msi + PCI_MSI_FLAGS, fn.config.read16(msi + PCI_MSI_FLAGS) | PCI_MSI_FLAGS_ENABLE);
  fn.config.write8(PCI_INTERRUPT_LINE, 0x0b);
}

function expectCode(action: () => void, code: string): SimError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(SimError);
    expect((error as SimError).code).toBe(code);
    return error as SimError;
  }
  throw new Error('did not throw');
}

const noFlr: HostDescription = {
  bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 1 }],
  devices: [{ bdf: '0000:01:00.0', vendorId: 0x1b36, deviceId: 0x0010, capabilities: { pcie: { flr: false } } }],
};

describe('Function Level Reset', () => {
  it('returns config space to power-on values when BCR_FLR is written to DevCtl', () => {
    const fn = nic();
    program(fn);
    const bar0 = fn.bars[0]!.address;
    const events: ResetEvent[] = [];
    fn.onReset((e) => events.push(e));
    const exp = findCapability(fn.config, PCI_CAP_ID_EXP);
    fn.config.write16(exp + PCI_EXP_DEVCTL, fn.config.read16(exp + PCI_EXP_DEVCTL) | PCI_EXP_DEVCTL_BCR_FLR);

    expect(fn.config.read16(PCI_COMMAND)).toBe(0);
    // BARs unassigned: only the read-only flag bits (64-bit) remain.
    expect(fn.config.read32(PCI_BASE_ADDRESS_0)).toBe(0x4);
    expect(fn.config.read32(PCI_BASE_ADDRESS_1)).toBe(0);
    const msi = findCapability(fn.config, PCI_CAP_ID_MSI);
    expect(fn.config.read16(msi + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_ENABLE).toBe(0);
    expect(fn.config.read8(PCI_INTERRUPT_LINE)).toBe(0);
    // Initiate FLR always reads 0.
    expect(fn.config.read16(exp + PCI_EXP_DEVCTL) & PCI_EXP_DEVCTL_BCR_FLR).toBe(0);
    expect(fn.resetCount).toBe(1);
    expect(fn.lastReset).toBe('flr');
    expect(events).toEqual([{ fn, kind: 'flr' }]);
    // What the OS assigned is its own record; restoring it is the OS's job.
    expect(fn.bars[0]!.address).toBe(bar0);
  });

  it('keeps Max_Payload_Size and sticky AER bits across FLR', () => {
    const fn = nic();
    const exp = findCapability(fn.config, PCI_CAP_ID_EXP);
    fn.config.write16(exp + PCI_EXP_DEVCTL, (fn.config.read16(exp + PCI_EXP_DEVCTL) & ~PCI_EXP_DEVCTL_PAYLOAD) | 0x20 | PCI_EXP_DEVCTL_URRE);
    const aer = findExtCapability(fn.config, PCI_EXT_CAP_ID_ERR);
    fn.config.hwUpdate(aer + PCI_ERR_UNCOR_STATUS, 4, PCI_ERR_UNC_POISON_TLP, PCI_ERR_UNC_POISON_TLP);
    fn.config.write32(aer + PCI_ERR_UNCOR_MASK, PCI_ERR_UNC_POISON_TLP);

    fn.flr();

    const devctl = fn.config.read16(exp + PCI_EXP_DEVCTL);
    expect(devctl & PCI_EXP_DEVCTL_PAYLOAD).toBe(0x20);
    expect(devctl & PCI_EXP_DEVCTL_URRE).toBe(0);
    expect(fn.config.read32(aer + PCI_ERR_UNCOR_STATUS)).toBe(PCI_ERR_UNC_POISON_TLP);
    expect(fn.config.read32(aer + PCI_ERR_UNCOR_MASK)).toBe(PCI_ERR_UNC_POISON_TLP);
  });

  it('is unavailable without PCI_EXP_DEVCAP_FLR: flr() throws and the DevCtl bit does nothing', () => {
    const fn = buildPlatform(noFlr).get('0000:01:00.0');
    expect(fn.flrCapable).toBe(false);
    const error = expectCode(() => fn.flr(), 'NOT_SUPPORTED');
    expect(error.errnoName).toBe('EOPNOTSUPP');
    fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    const exp = findCapability(fn.config, PCI_CAP_ID_EXP);
    fn.config.write16(exp + PCI_EXP_DEVCTL, fn.config.read16(exp + PCI_EXP_DEVCTL) | PCI_EXP_DEVCTL_BCR_FLR);
    expect(fn.config.read16(PCI_COMMAND)).toBe(PCI_COMMAND_MEMORY);
    expect(fn.resetCount).toBe(0);
  });

  it('re-masks every MSI-X vector and clears device memory', () => {
    const fn = nic();
    fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    // The table is at offset 0 of BAR 4: program vector 3 unmasked.
    fn.writeBar(4, 3n * 16n, 8, 0x00000000fee00000n);
    fn.writeBar(4, 3n * 16n + 8n, 4, 0x4041n);
    fn.writeBar(4, 3n * 16n + 12n, 4, 0n);
    expect(fn.msix!.entry(3)).toEqual({ address: 0xfee00000n, data: 0x4041, masked: false });
    fn.writeBar(0, 0x100n, 4, 0xdeadbeefn);

    fn.flr();
    fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    expect(fn.msix!.entry(3)).toEqual({ address: 0n, data: 0, masked: true });
    expect(fn.readBar(4, 3n * 16n + 12n, 4)).toBe(1n);
    expect(fn.readBar(0, 0x100n, 4)).toBe(0n);
  });

  it('unsubscribes a reset listener', () => {
    const fn = nic();
    let calls = 0;
    const off = fn.onReset(() => calls++);
    fn.flr();
    off();
    fn.flr();
    expect(calls).toBe(1);
    expect(fn.resetCount).toBe(2);
  });
});

describe('PM reset (D3hot -> D0)', () => {
  it('resets the function when NoSoftReset is clear', () => {
    const fn = rich();
    program(fn);
    expect(fn.noSoftReset).toBe(false);
    fn.pmReset();
    expect(fn.config.read16(PCI_COMMAND)).toBe(0);
    expect(fn.lastReset).toBe('pm');
    expect(fn.powerState).toBe('D0');
  });

  it('keeps state across D3hot -> D0 when NoSoftReset is set, and refuses pmReset()', () => {
    const fn = nic();
    program(fn);
    expect(fn.noSoftReset).toBe(true);
    expectCode(() => fn.pmReset(), 'NOT_SUPPORTED');
    const pm = fn.pmCap;
    fn.config.write16(pm + PCI_PM_CTRL, 3);
    expect(fn.powerState).toBe('D3hot');
    fn.config.write16(pm + PCI_PM_CTRL, 0);
    expect(fn.powerState).toBe('D0');
    expect(fn.config.read16(PCI_COMMAND)).toBe(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    expect(fn.resetCount).toBe(0);
  });

  it('refuses pmReset() outside D0, as pci_pm_reset answers EINVAL', () => {
    const fn = rich();
    fn.config.write16(fn.pmCap + PCI_PM_CTRL, 3);
    expectCode(() => fn.pmReset(), 'INVALID_ARGUMENT');
  });

  it('discards a write of a power state the function does not support', () => {
    const plain = nic();
    plain.config.write16(plain.pmCap + PCI_PM_CTRL, 1);
    expect(plain.powerState).toBe('D0');
    const withD1 = rich();
    withD1.config.write16(withD1.pmCap + PCI_PM_CTRL, 1);
    expect(withD1.powerState).toBe('D1');
  });

  it('stops decoding BARs outside D0', () => {
    const fn = nic();
    fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    fn.writeBar(0, 0n, 4, 0x1234n);
    fn.config.write16(fn.pmCap + PCI_PM_CTRL, 3);
    expect(fn.readBar(0, 0n, 4)).toBe(0xffffffffn);
    fn.config.write16(fn.pmCap + PCI_PM_CTRL, 0);
    expect(fn.readBar(0, 0n, 4)).toBe(0x1234n);
  });
});

describe('other function resets', () => {
  it('resets through the Advanced Features capability', () => {
    const fn = rich();
    program(fn);
    fn.afFlr();
    expect(fn.lastReset).toBe('af_flr');
    expect(fn.config.read16(PCI_COMMAND)).toBe(0);
  });

  it('offers ACPI and device-specific resets only when the platform provides them', () => {
    const fn = nic();
    expectCode(() => fn.acpiReset(), 'NOT_SUPPORTED');
    expectCode(() => fn.deviceSpecificReset(), 'NOT_SUPPORTED');
    const withAcpi = buildPlatform({
      bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 1 }],
      devices: [{ bdf: '0000:01:00.0', vendorId: 0x1b36, deviceId: 0x0010, resets: { acpi: true } }],
    }).get('0000:01:00.0');
    withAcpi.acpiReset();
    expect(withAcpi.lastReset).toBe('acpi');
  });
});

describe('BAR and ROM access', () => {
  it('answers all-ones and drops writes while Memory Space is disabled', () => {
    const fn = nic();
    fn.writeBar(0, 0x10n, 4, 0xaan);
    expect(fn.readBar(0, 0x10n, 4)).toBe(0xffffffffn);
    fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    expect(fn.readBar(0, 0x10n, 4)).toBe(0n);
    fn.writeBar(0, 0x10n, 8, 0x1122334455667788n);
    expect(fn.readBar(0, 0x14n, 4)).toBe(0x11223344n);
    expect(fn.readBar(0, 0x10n, 1)).toBe(0x88n);
  });

  it('decodes an I/O BAR with I/O Space enable', () => {
    const fn = nic();
    fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    expect(fn.readBar(2, 0n, 4)).toBe(0xffffffffn);
    fn.config.write16(PCI_COMMAND, 0x1);
    expect(fn.readBar(2, 0n, 4)).toBe(0n);
  });

  it('rejects accesses outside the BAR, misaligned, or to a missing BAR', () => {
    const fn = nic();
    expectCode(() => fn.readBar(0, 512n * 1024n, 4), 'OUT_OF_RANGE');
    expectCode(() => fn.readBar(0, 2n, 4), 'INVALID_ARGUMENT');
    expectCode(() => fn.readBar(3, 0n, 4), 'NO_DEVICE');
    expectCode(() => fn.readBar(0, 0n, 3 as 4), 'INVALID_ARGUMENT');
  });

  it('passes non-MSI-X accesses to a plugged-in BAR handler', () => {
    const fn = nic();
    fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    const seen: string[] = [];
    const handler: BarHandler = {
      read: (bar, offset, size) => {
        seen.push(`r${bar}:${offset}:${size}`);
        return 0x5an;
      },
      write: (bar, offset, size, value) => {
        seen.push(`w${bar}:${offset}:${size}:${value}`);
      },
    };
    fn.setBarHandler(handler);
    expect(fn.readBar(0, 8n, 4)).toBe(0x5an);
    fn.writeBar(4, 0x3000n, 2, 0x1ffffn);
    // The MSI-X table (BAR 4 offset 0) stays with the function.
    fn.readBar(4, 0n, 4);
    expect(seen).toEqual(['r0:8:4', 'w4:12288:2:65535']);
    fn.setBarHandler(null);
    expect(fn.readBar(0, 8n, 4)).toBe(0n);
  });

  it('ignores writes to the Pending Bit Array and shows pending vectors', () => {
    const fn = nic();
    fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    fn.writeBar(4, 0x2000n, 8, 0xffn);
    expect(fn.readBar(4, 0x2000n, 8)).toBe(0n);
    fn.msix!.setPending(2, true);
    expect(fn.readBar(4, 0x2000n, 8)).toBe(4n);
  });

  it('reads a valid option ROM only while the ROM BAR and Memory Space are enabled', () => {
    const fn = rich();
    expect(fn.readRom(0n, 2)).toBe(0xffffn);
    fn.config.write32(PCI_ROM_ADDRESS, fn.config.read32(PCI_ROM_ADDRESS) | PCI_ROM_ADDRESS_ENABLE);
    fn.config.write16(PCI_COMMAND, PCI_COMMAND_MEMORY);
    expect(fn.readRom(0n, 2)).toBe(0xaa55n);
    const pcir = Number(fn.readRom(0x18n, 2));
    expect(fn.readRom(BigInt(pcir), 4)).toBe(0x52494350n); // "PCIR"
    expect(fn.readRom(BigInt(pcir + 4), 4)).toBe(0xcafe1d0fn);
  });
});
