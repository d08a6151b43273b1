import { SimError } from '../errors/index.js';

export type ConfigAccessSize = 1 | 2 | 4;

/** One configuration write as the function received it. */
export interface ConfigWrite {
  readonly offset: number;
  readonly size: ConfigAccessSize;
  /** The value as written, before the register's masks applied. */
  readonly value: number;
}

/**
 * Runs after a configuration write touching the watched range has been
 * stored. Hardware side effects live here: an FLR started by writing
 * BCR_FLR, a power-state change, VF Enable, a secondary bus reset.
 */
export type ConfigWriteWatcher = (write: ConfigWrite) => void;

/** How one register (or part) behaves, in the spec's attribute terms. */
export interface RegisterDefinition {
  /** Power-on value. */
  readonly value: number;
  /** RW bits: a write stores them. */
  readonly writable?: number;
  /** RW1C bits: writing 1 clears them, writing 0 leaves them. */
  readonly rw1c?: number;
  /** Sticky bits (RWS, RW1CS, ROS): every reset but a fundamental one keeps them. */
  readonly sticky?: number;
}

/**
 * A function's configuration space with hardware write semantics. Each byte
 * has a mask of RW bits and a mask of RW1C bits; every other bit is read-only
 * to configuration writes (RO, HwInit, RsvdP). The device itself changes
 * read-only state with the `hw*` methods (status bits it sets, BAR sizing
 * results are just the masks at work).
 *
 * Power-on values are captured once the function is built; a reset restores
 * them except for sticky bits, which hardware keeps across hot reset, FLR and
 * the D3hot->D0 internal reset alike.
 */
export class ConfigSpace {
  readonly size: number;
  private readonly bytes: Uint8Array;
  private readonly writableMask: Uint8Array;
  private readonly rw1cMask: Uint8Array;
  private readonly stickyMask: Uint8Array;
  private powerOn: Uint8Array | null = null;
  private readonly watchers: Array<{ start: number; end: number; fn: ConfigWriteWatcher }> = [];
  private responding = true;

  constructor(size: number) {
    if (size !== 256 && size !== 4096) {
      throw new SimError('INVALID_ARGUMENT', `config space is 256 or 4096 bytes, not ${size}`);
    }
    this.size = size;
    this.bytes = new Uint8Array(size);
    this.writableMask = new Uint8Array(size);
    this.rw1cMask = new Uint8Array(size);
    this.stickyMask = new Uint8Array(size);
  }

  /** A configuration read, as a config cycle from the CPU sees it. */
  read(offset: number, size: ConfigAccessSize): number {
    this.checkAccess(offset, size);
    if (!this.responding) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    return this.load(offset, size);
  }

  /** A configuration write with hardware semantics (RW, RW1C, read-only bits). */
  write(offset: number, size: ConfigAccessSize, value: number): void {
    this.checkAccess(offset, size);
    if (!this.responding) return;
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const byte = (value >>> (i * 8)) & 0xff;
      const writable = this.writableMask[at];
      let next = (this.bytes[at] & ~writable) | (byte & writable);
      next &= ~(byte & this.rw1cMask[at]);
      this.bytes[at] = next;
    }
    const end = offset + size;
    let write: ConfigWrite | null = null;
    for (let i = 0; i < this.watchers.length; i++) {
      const watcher = this.watchers[i];
      if (watcher.start < end && offset < watcher.end) watcher.fn((write ??= { offset, size, value: value >>> 0 }));
    }
  }

  read8(offset: number): number {
    return this.read(offset, 1);
  }
  read16(offset: number): number {
    return this.read(offset, 2);
  }
  read32(offset: number): number {
    return this.read(offset, 4);
  }
  write8(offset: number, value: number): void {
    this.write(offset, 1, value);
  }
  write16(offset: number, value: number): void {
    this.write(offset, 2, value);
  }
  write32(offset: number, value: number): void {
    this.write(offset, 4, value);
  }

  /** The stored value regardless of whether the function responds (device-internal view). */
  hwRead(offset: number, size: ConfigAccessSize): number {
    this.checkAccess(offset, size);
    return this.load(offset, size);
  }

  /** The device sets the bits in `mask` to `value`, whatever their attribute. */
  hwUpdate(offset: number, size: ConfigAccessSize, mask: number, value: number): void {
    this.checkAccess(offset, size);
    const current = this.load(offset, size);
    this.store(offset, size, (current & ~mask) | (value & mask));
  }

  /** Defines a register at build time: its power-on value and attributes. */
  define(offset: number, size: ConfigAccessSize, reg: RegisterDefinition): void {
    this.checkAccess(offset, size);
    if (this.powerOn) throw new SimError('BUSY', 'config space layout is fixed once the function is built');
    const rw1c = reg.rw1c ?? 0;
    const writable = (reg.writable ?? 0) & ~rw1c;
    for (let i = 0; i < size; i++) {
      const shift = i * 8;
      this.bytes[offset + i] = (reg.value >>> shift) & 0xff;
      this.writableMask[offset + i] = (writable >>> shift) & 0xff;
      this.rw1cMask[offset + i] = (rw1c >>> shift) & 0xff;
      this.stickyMask[offset + i] = ((reg.sticky ?? 0) >>> shift) & 0xff;
    }
  }

  /** RW bits of a register (what a write can change). */
  writableBits(offset: number, size: ConfigAccessSize): number {
    this.checkAccess(offset, size);
    return gather(this.writableMask, offset, size);
  }

  /** RW1C bits of a register. */
  rw1cBits(offset: number, size: ConfigAccessSize): number {
    this.checkAccess(offset, size);
    return gather(this.rw1cMask, offset, size);
  }

  /** Captures the current contents as the power-on state; called once when built. */
  sealPowerOnState(): void {
    this.powerOn = this.bytes.slice();
  }

  /**
   * Returns every byte to its power-on value, keeping sticky bits and the
   * bits of `preserve` (offset, size, mask) the kind of reset leaves alone.
   */
  resetToPowerOn(preserve: ReadonlyArray<{ offset: number; size: ConfigAccessSize; mask: number }> = []): void {
    const image = this.powerOn;
    if (!image) throw new SimError('BUSY', 'config space reset before the function was built');
    const keep = this.stickyMask.slice();
    for (const field of preserve) {
      for (let i = 0; i < field.size; i++) keep[field.offset + i] |= (field.mask >>> (i * 8)) & 0xff;
    }
    for (let at = 0; at < this.size; at++) {
      this.bytes[at] = (image[at] & ~keep[at]) | (this.bytes[at] & keep[at]);
    }
  }

  /** Calls `fn` after every configuration write that touches [offset, offset + length). */
  watch(offset: number, length: number, fn: ConfigWriteWatcher): void {
    this.watchers.push({ start: offset, end: offset + length, fn });
  }

  /**
   * Whether the function answers config requests. A function held in reset
   * (secondary bus reset asserted) or disabled (a VF with VF Enable clear)
   * does not: reads complete as all-ones and writes are dropped.
   */
  get isResponding(): boolean {
    return this.responding;
  }

  setResponding(responding: boolean): void {
    this.responding = responding;
  }

  private checkAccess(offset: number, size: number): void {
    if (size !== 1 && size !== 2 && size !== 4) {
      throw new SimError('INVALID_ARGUMENT', `config access size ${size}; config cycles are 1, 2 or 4 bytes`);
    }
    if (!Number.isInteger(offset) || offset < 0 || offset + size > this.size) {
      throw new SimError('OUT_OF_RANGE', `config offset 0x${offset.toString(16)} size ${size} is outside ${this.size} bytes of config space`);
    }
    if (offset % size !== 0) {
      throw new SimError('INVALID_ARGUMENT', `config access of ${size} bytes at 0x${offset.toString(16)} is not naturally aligned`);
    }
  }

  private load(offset: number, size: number): number {
    return gather(this.bytes, offset, size);
  }

  private store(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.bytes[offset + i] = (value >>> (i * 8)) & 0xff;
  }
}

function gather(bytes: Uint8Array, offset: number, size: number): number {
  let value = 0;
  for (let i = size - 1; i >= 0; i--) value = (value << 8) | bytes[offset + i];
  return value >>> 0;
}

/**
 * The bits a write put into the field [fieldOffset, fieldOffset + fieldSize),
 * and which of the field's bits the write covered; null when the write does
 * not touch the field. Side effects triggered by write-only bits (BCR_FLR,
 * PRI Reset, Retrain Link) look at what was written, since those bits always
 * read 0.
 */
export function writtenField(
  write: ConfigWrite,
  fieldOffset: number,
  fieldSize: number,
): { value: number; covered: number } | null {
  let value = 0;
  let covered = 0;
  let touched = false;
  for (let i = 0; i < fieldSize; i++) {
    const at = fieldOffset + i;
    if (at < write.offset || at >= write.offset + write.size) continue;
    touched = true;
    const byte = (write.value >>> ((at - write.offset) * 8)) & 0xff;
    value |= byte << (i * 8);
    covered |= 0xff << (i * 8);
  }
  return touched ? { value: value >>> 0, covered: covered >>> 0 } : null;
}
