import { barFlags } from '../../platform/bars.js';
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_1,
  PCI_BASE_ADDRESS_2,
  PCI_BASE_ADDRESS_3,
  PCI_BASE_ADDRESS_4,
  PCI_BASE_ADDRESS_5,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BIST,
  PCI_CACHE_LINE_SIZE,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_ROM_ADDRESS,
  PCI_ROM_ADDRESS_ENABLE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
  PCI_STD_NUM_BARS,
  PCI_VENDOR_ID,
} from '../../platform/pci-regs.js';
import { vfioPciIntxMask, vfioPciIntxUnmask } from '../intrs/intx.js';
import type { VfioPciCoreDevice } from '../vfio-pci-core-device.js';
import { defaultRead, defaultWrite, physRead, physWrite, shadowRead, shadowWrite } from './access.js';
import { ALL_VIRT, ALL_WRITE, NO_VIRT, NO_WRITE, PermBits } from './perm-bits.js';

/** A chunk of the standard header touches a BAR or the ROM BAR (offset and position coincide there). */
function isBar(offset: number): boolean {
  return (offset >= PCI_BASE_ADDRESS_0 && offset < PCI_BASE_ADDRESS_5 + 4) || (offset >= PCI_ROM_ADDRESS && offset < PCI_ROM_ADDRESS + 4);
}

/**
 * The BAR registers the user sees behave like a BAR being sized: the
 * address bits below the BAR's size read as zero and the type bits are the
 * hardware's, so writing all-ones and reading back yields the size. A BAR
 * the host left unassigned reads as not implemented. Done lazily, on the
 * first BAR read after a BAR write.
 */
function barFixup(vdev: VfioPciCoreDevice): void {
  if (!vdev.bardirty) return;
  const { pdev } = vdev;
  for (let i = 0; i < PCI_STD_NUM_BARS; i++) {
    const at = PCI_BASE_ADDRESS_0 + i * 4;
    const bar = pdev.bars[i];
    if (!bar || bar.address === 0n) {
      shadowWrite(vdev, at, 4, 0);
      continue;
    }
    const mask = ~(bar.size - 1n);
    const flags = barFlags(bar);
    shadowWrite(vdev, at, 4, (shadowRead(vdev, at, 4) & Number(mask & 0xffffffffn)) | flags);
    if (flags & PCI_BASE_ADDRESS_MEM_TYPE_64) {
      shadowWrite(vdev, at + 4, 4, shadowRead(vdev, at + 4, 4) & Number((mask >> 32n) & 0xffffffffn));
      i++;
    }
  }
  const rom = pdev.rom;
  if (rom && rom.address !== 0n) {
    const mask = Number(~(rom.size - 1n) & 0xffffffffn) | PCI_ROM_ADDRESS_ENABLE;
    shadowWrite(vdev, PCI_ROM_ADDRESS, 4, shadowRead(vdev, PCI_ROM_ADDRESS, 4) & mask);
  } else {
    shadowWrite(vdev, PCI_ROM_ADDRESS, 4, 0);
  }
  vdev.bardirty = false;
}

/**
 * The function's BARs no longer hold what the host assigned: something
 * reset it behind vfio's back (an FLR the device did on its own, a reset
 * of another function in the slot).
 */
function needBarRestore(vdev: VfioPciCoreDevice): boolean {
  for (let i = 0; i < PCI_STD_NUM_BARS; i++) {
    const saved = vdev.rbar[i];
    if (saved && physRead(vdev, PCI_BASE_ADDRESS_0 + i * 4, 4) !== saved) return true;
  }
  return false;
}

/** Writes the host's BAR assignment back (a VF's BARs live in the PF and need nothing). */
function barRestore(vdev: VfioPciCoreDevice): void {
  if (vdev.pdev.isVirtfn) return;
  for (let i = 0; i < PCI_STD_NUM_BARS; i++) physWrite(vdev, PCI_BASE_ADDRESS_0 + i * 4, 4, vdev.rbar[i]);
  physWrite(vdev, PCI_ROM_ADDRESS, 4, vdev.rbar[6]);
  if (vdev.nointx) physWrite(vdev, PCI_COMMAND, 2, physRead(vdev, PCI_COMMAND, 2) | PCI_COMMAND_INTX_DISABLE);
}

function basicRead(vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number): number {
  if (isBar(offset)) barFixup(vdev);
  let value = defaultRead(vdev, pos, count, perm, offset);
  // A function without a Memory Space bit shows the virtual one.
  if (offset === PCI_COMMAND && vdev.pdev.isVirtfn) value = (value | (shadowRead(vdev, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY)) >>> 0;
  return value;
}

function basicWrite(vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number, value: number): void {
  const newCmd = value & 0xffff;
  if (offset === PCI_COMMAND) {
    const physCmd = physRead(vdev, PCI_COMMAND, 2);
    const virtCmd = shadowRead(vdev, PCI_COMMAND, 2);
    const enables = (cmd: number, bit: number) => (cmd & bit) !== 0;
    const newMem = enables(newCmd, PCI_COMMAND_MEMORY);
    const newIo = enables(newCmd, PCI_COMMAND_IO);
    // Enabling decode the user believes is on while the function shows it
    // off means the function was reset without vfio noticing; its BARs
    // must be reprogrammed first.
    if (
      (newMem && enables(virtCmd, PCI_COMMAND_MEMORY) && !enables(physCmd, PCI_COMMAND_MEMORY) && !vdev.pdev.isVirtfn) ||
      (newIo && enables(virtCmd, PCI_COMMAND_IO) && !enables(physCmd, PCI_COMMAND_IO)) ||
      needBarRestore(vdev)
    ) {
      barRestore(vdev);
    }
  }

  defaultWrite(vdev, pos, count, perm, offset, value);

  // Keep the user's decode enables in the shadow: memory access checks and
  // the restore test above read them there.
  if (offset === PCI_COMMAND) {
    const mask = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
    shadowWrite(vdev, PCI_COMMAND, 2, (shadowRead(vdev, PCI_COMMAND, 2) & ~mask) | (newCmd & mask));
  }

  // DisINTx is virtual: the user's bit masks and unmasks vfio's INTx.
  if (offset >= PCI_COMMAND && offset <= PCI_COMMAND + 1) {
    const disabled = (shadowRead(vdev, PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) !== 0;
    if (disabled && !vdev.virqDisabled) {
      vdev.virqDisabled = true;
      vfioPciIntxMask(vdev);
    } else if (!disabled && vdev.virqDisabled) {
      vdev.virqDisabled = false;
      vfioPciIntxUnmask(vdev);
    }
  }

  if (isBar(offset)) vdev.bardirty = true;
}

/** The standard header's permissions. */
export function basicPerms(): PermBits {
  return (
    new PermBits(PCI_STD_HEADER_SIZEOF, basicRead, basicWrite)
      // A VF reads 0xffff here; vfio shows the real ids.
      .word(PCI_VENDOR_ID, 0xffff, NO_WRITE)
      .word(PCI_DEVICE_ID, 0xffff, NO_WRITE)
      // DisINTx is vfio's own INTx mask; every other command bit goes to the function.
      .word(PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, 0xffff)
      // The capability list bit tracks the capabilities vfio shows.
      .word(PCI_STATUS, PCI_STATUS_CAP_LIST, NO_WRITE)
      .byte(PCI_CACHE_LINE_SIZE, NO_VIRT, 0xff)
      .byte(PCI_LATENCY_TIMER, NO_VIRT, 0xff)
      .byte(PCI_BIST, NO_VIRT, 0xff)
      // The user programs virtual BARs; the host's assignment stays.
      .dword(PCI_BASE_ADDRESS_0, ALL_VIRT, ALL_WRITE)
      .dword(PCI_BASE_ADDRESS_1, ALL_VIRT, ALL_WRITE)
      .dword(PCI_BASE_ADDRESS_2, ALL_VIRT, ALL_WRITE)
      .dword(PCI_BASE_ADDRESS_3, ALL_VIRT, ALL_WRITE)
      .dword(PCI_BASE_ADDRESS_4, ALL_VIRT, ALL_WRITE)
      .dword(PCI_BASE_ADDRESS_5, ALL_VIRT, ALL_WRITE)
      .dword(PCI_ROM_ADDRESS, ALL_VIRT, ALL_WRITE)
      .byte(PCI_CAPABILITY_LIST, 0xff, NO_WRITE)
      .byte(PCI_INTERRUPT_LINE, 0xff, 0xff)
      // The pin is virtual so INTx can be hidden.
      .byte(PCI_INTERRUPT_PIN, 0xff, NO_WRITE)
  );
}

/** BAR registers as the host assigned them: BARs 0-5, then the ROM BAR. */
export const RBAR_OFFSETS = [
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_1,
  PCI_BASE_ADDRESS_2,
  PCI_BASE_ADDRESS_3,
  PCI_BASE_ADDRESS_4,
  PCI_BASE_ADDRESS_5,
  PCI_ROM_ADDRESS,
] as const;
