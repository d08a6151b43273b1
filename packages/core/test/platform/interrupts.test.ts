import { describe, expect, it } from 'vitest';
import {
  buildPlatform,
  findCapability,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_ENTRY_DATA,
  PCI_MSIX_ENTRY_LOWER_ADDR,
  PCI_MSIX_ENTRY_UPPER_ADDR,
  PCI_MSIX_ENTRY_VECTOR_CTRL,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_MASK_64,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  pciIntxAsserted,
  pciOnInterrupt,
  pciSetIntxLevel,
  pciSignalMsi,
  type MsiMessage,
  type PciFunction,
} from '@vfiosim/core';
import { richEndpoint } from '../fixtures/hosts.js';

/** The rich endpoint: 32-vector 64-bit MSI with per-vector masks, and a 128-entry MSI-X table at BAR 4 offset 0. */
function endpoint(): PciFunction {
  const fn = buildPlatform(richEndpoint).get('0000:17:00.0');
  fn.config.write(PCI_COMMAND, 2, fn.config.read(PCI_COMMAND, 2) | PCI_COMMAND_MEMORY);
  return fn;
}

function listen(fn: PciFunction) {
  const messages: MsiMessage[] = [];
  let intx = 0;
  const stop = pciOnInterrupt(fn, { msi: (message) => messages.push(message), intx: () => intx++ });
  return { messages, intxCount: () => intx, stop };
}

function programMsixEntry(fn: PciFunction, vector: number, address: bigint, data: number, masked: boolean): void {
  const at = BigInt(vector * 16);
  fn.writeBar(4, at + BigInt(PCI_MSIX_ENTRY_LOWER_ADDR), 4, address & 0xffffffffn);
  fn.writeBar(4, at + BigInt(PCI_MSIX_ENTRY_UPPER_ADDR), 4, address >> 32n);
  fn.writeBar(4, at + BigInt(PCI_MSIX_ENTRY_DATA), 4, BigInt(data));
  fn.writeBar(4, at + BigInt(PCI_MSIX_ENTRY_VECTOR_CTRL), 4, masked ? 1n : 0n);
}

function setMsixFlags(fn: PciFunction, flags: number): void {
  const cap = findCapability(fn.config, PCI_CAP_ID_MSIX);
  fn.config.write(cap + PCI_MSIX_FLAGS, 2, flags);
}

describe('what a function sends when its device logic raises an interrupt', () => {
  it('sends an unmasked MSI-X vector\'s message to every listener, and nothing once a listener is removed', () => {
    const fn = endpoint();
    programMsixEntry(fn, 3, 0x1_fee0_1000n, 0x4321, false);
    setMsixFlags(fn, PCI_MSIX_FLAGS_ENABLE);
    const a = listen(fn);
    const b = listen(fn);
    pciSignalMsi(fn, 3);
    expect(a.messages).toEqual([{ address: 0x1_fee0_1000n, data: 0x4321 }]);
    expect(b.messages).toEqual(a.messages);
    b.stop();
    pciSignalMsi(fn, 3);
    expect(a.messages).toHaveLength(2);
    expect(b.messages).toHaveLength(1);
  });

  it('latches a masked MSI-X vector and sends it when software unmasks the entry', () => {
    const fn = endpoint();
    programMsixEntry(fn, 5, 0xfee0_0000n, 0x77, true);
    setMsixFlags(fn, PCI_MSIX_FLAGS_ENABLE);
    const { messages } = listen(fn);
    pciSignalMsi(fn, 5);
    expect(messages).toEqual([]);
    expect(fn.msix!.isPending(5)).toBe(true);
    fn.writeBar(4, BigInt(5 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL), 4, 0n);
    expect(messages).toEqual([{ address: 0xfee0_0000n, data: 0x77 }]);
    expect(fn.msix!.isPending(5)).toBe(false);
  });

  it('keeps an MSI-X vector pending under Function Mask, even when its entry is unmasked', () => {
    const fn = endpoint();
    programMsixEntry(fn, 0, 0xfee0_0000n, 1, true);
    setMsixFlags(fn, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    const { messages } = listen(fn);
    pciSignalMsi(fn, 0);
    fn.writeBar(4, BigInt(PCI_MSIX_ENTRY_VECTOR_CTRL), 4, 0n);
    expect(messages).toEqual([]);
    expect(fn.msix!.isPending(0)).toBe(true);
  });

  it('sends MSI with the 64-bit address and the vector in the low data bits, and holds back a masked or disabled vector', () => {
    const fn = endpoint();
    const cap = findCapability(fn.config, PCI_CAP_ID_MSI);
    fn.config.write(cap + PCI_MSI_ADDRESS_LO, 4, 0xfee0_2000);
    fn.config.write(cap + PCI_MSI_ADDRESS_HI, 4, 0x2);
    fn.config.write(cap + PCI_MSI_DATA_64, 2, 0x40);
    fn.config.write(cap + PCI_MSI_MASK_64, 4, 1 << 2);
    // Multiple Message Enable: 4 vectors.
    fn.config.write(cap + PCI_MSI_FLAGS, 2, fn.config.read(cap + PCI_MSI_FLAGS, 2) | (2 << 4) | PCI_MSI_FLAGS_ENABLE);
    const { messages } = listen(fn);
    pciSignalMsi(fn, 1);
    pciSignalMsi(fn, 2);
    pciSignalMsi(fn, 4);
    expect(messages).toEqual([{ address: 0x2_fee0_2000n, data: 0x41 }]);
  });

  it('drives INTx only while Interrupt Status is set and DisINTx clear', () => {
    const fn = endpoint();
    const { intxCount } = listen(fn);
    fn.config.write(PCI_COMMAND, 2, fn.config.read(PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE);
    pciSetIntxLevel(fn, true);
    expect(fn.config.read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT).toBe(PCI_STATUS_INTERRUPT);
    expect(pciIntxAsserted(fn)).toBe(false);
    expect(intxCount()).toBe(0);
    fn.config.write(PCI_COMMAND, 2, fn.config.read(PCI_COMMAND, 2) & ~PCI_COMMAND_INTX_DISABLE);
    expect(pciIntxAsserted(fn)).toBe(true);
    pciSetIntxLevel(fn, true);
    expect(intxCount()).toBe(1);
    pciSetIntxLevel(fn, false);
    expect(fn.config.read(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT).toBe(0);
    expect(pciIntxAsserted(fn)).toBe(false);
    expect(intxCount()).toBe(1);
  });
});
