import { SimError } from '../errors/index.js';
import { PAGE_SIZE } from './page.js';

export interface PhysicalMemoryOptions {
  /** RAM size in 4 KiB frames; allocation beyond it fails with ENOMEM. Default 2^32 frames (16 TiB). */
  readonly totalFrames?: bigint;
  /**
   * The first frame the allocator owns. Low memory below it (the first MiB
   * on a PC) is never handed out, so physical address 0 is never valid RAM.
   */
  readonly firstPfn?: bigint;
}

/** What a frame needs from its allocator; kept out of the public API. */
interface FrameOwner {
  freed(frame: Frame): void;
  pinnedChanged(delta: 1 | -1): void;
}

/**
 * One 4 KiB page frame of host RAM (the kernel's struct page).
 *
 * Two counts keep it alive, as in Linux: references from the memory objects
 * that hold it (refs), and pins taken by GUP for DMA (pins). The frame is
 * freed when both reach zero, so a page pinned for DMA survives munmap, the
 * memory object's death and the owner's exit until whoever pinned it
 * unpins it.
 */
export class Frame {
  readonly pfn: bigint;
  /** The frame's bytes; zero-filled on allocation. */
  readonly data: Uint8Array;
  #refs = 1;
  #pins = 0;
  #live = true;
  readonly #owner: FrameOwner;

  /** Frames come from PhysicalMemory.allocate(); the owner is private to this module. */
  constructor(owner: FrameOwner, pfn: bigint) {
    this.#owner = owner;
    this.pfn = pfn;
    this.data = new Uint8Array(PAGE_SIZE);
  }

  /** Physical address of the frame's first byte. */
  get pa(): bigint {
    return this.pfn << 12n;
  }

  get refs(): number {
    return this.#refs;
  }

  get pins(): number {
    return this.#pins;
  }

  /** False once freed; the pfn may since belong to a new Frame. */
  get live(): boolean {
    return this.#live;
  }

  get(): this {
    this.#assertLive('get');
    this.#refs++;
    return this;
  }

  put(): void {
    this.#assertLive('put');
    if (this.#refs === 0) throw new Error(`frame ${this.#hex()}: put without a reference`);
    this.#refs--;
    this.#maybeFree();
  }

  pin(): void {
    this.#assertLive('pin');
    if (this.#pins++ === 0) this.#owner.pinnedChanged(1);
  }

  unpin(): void {
    this.#assertLive('unpin');
    if (this.#pins === 0) throw new Error(`frame ${this.#hex()}: unpin without a pin`);
    if (--this.#pins === 0) this.#owner.pinnedChanged(-1);
    this.#maybeFree();
  }

  #maybeFree(): void {
    if (this.#refs === 0 && this.#pins === 0) {
      this.#live = false;
      this.#owner.freed(this);
    }
  }

  #assertLive(op: string): void {
    // A model bug, not a user error: the kernel would be touching a freed page.
    if (!this.#live) throw new Error(`frame ${this.#hex()}: ${op} after free`);
  }

  #hex(): string {
    return `pfn 0x${this.pfn.toString(16)}`;
  }
}

/**
 * The host's RAM, frame by frame, allocated on first touch: only frames
 * some memory object or pin holds exist, so a process may map terabytes and
 * pay for the pages it touches.
 *
 * Frame numbers are deterministic: a freed frame is reused first (most
 * recently freed first, like the page allocator's per-CPU lists), then
 * fresh frames are taken in increasing order. Reuse is what makes a stale
 * DMA translation observable: it lands in the frame's next owner.
 */
export class PhysicalMemory {
  readonly totalFrames: bigint;
  readonly firstPfn: bigint;
  /** Keyed by the pfn as a number: a 64-bit address has a pfn below 2^52, exact as a number, and numbers hash faster. */
  readonly #frames = new Map<number, Frame>();
  readonly #free: bigint[] = [];
  #nextPfn: bigint;
  #pinned = 0;
  #stray = 0;
  readonly #owner: FrameOwner;

  constructor(options: PhysicalMemoryOptions = {}) {
    this.totalFrames = options.totalFrames ?? 1n << 32n;
    this.firstPfn = options.firstPfn ?? 0x100n;
    this.#nextPfn = this.firstPfn;
    this.#owner = {
      freed: (frame) => {
        this.#frames.delete(Number(frame.pfn));
        this.#free.push(frame.pfn);
      },
      pinnedChanged: (delta) => {
        this.#pinned += delta;
      },
    };
  }

  /** A zero-filled frame holding one reference for the caller. */
  allocate(): Frame {
    let pfn = this.#free.pop();
    if (pfn === undefined) {
      if (this.#nextPfn >= this.firstPfn + this.totalFrames) {
        throw new SimError('OUT_OF_MEMORY', `host RAM exhausted (${this.totalFrames} frames)`);
      }
      pfn = this.#nextPfn++;
    }
    const frame = new Frame(this.#owner, pfn);
    this.#frames.set(Number(pfn), frame);
    return frame;
  }

  /** The live frame with this number, if any. */
  frame(pfn: bigint): Frame | undefined {
    return this.#frames.get(Number(pfn));
  }

  /** Frames currently allocated (held by a memory object or a pin). */
  get allocatedFrames(): number {
    return this.#frames.size;
  }

  /** Frames with at least one pin. */
  get pinnedFrames(): number {
    return this.#pinned;
  }

  /**
   * Reads and writes that hit no live frame. On hardware such an access
   * reaches free memory; here reads return zeros and writes are dropped (a
   * free frame is zeroed when next allocated, so nothing could see them),
   * and this counter lets a test or checker notice the stray DMA.
   */
  get strayAccesses(): number {
    return this.#stray;
  }

  /** The hardware's view: reads by physical address, across frames. */
  read(pa: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.readInto(pa, out, 0, length);
    return out;
  }

  /**
   * Reads `length` bytes at `pa` into `dst` from `offset` (by default to the
   * end of `dst`), across frames, without allocating: the DMA engine's read
   * path. A stray read (no live frame) fills zeros, as read() returns.
   */
  readInto(pa: bigint, dst: Uint8Array, offset = 0, length = dst.length - offset): void {
    checkSpan(dst, offset, length);
    let done = 0;
    while (done < length) {
      const at = frameOf(pa, done);
      const chunk = Math.min(length - done, PAGE_SIZE - at.offset);
      const frame = this.#frames.get(at.pfn);
      if (frame) copyBytes(frame.data, at.offset, dst, offset + done, chunk);
      else {
        dst.fill(0, offset + done, offset + done + chunk);
        this.#stray++;
      }
      done += chunk;
    }
  }

  /** The hardware's view: writes by physical address, across frames. */
  write(pa: bigint, bytes: Uint8Array, offset = 0, length = bytes.length - offset): void {
    checkSpan(bytes, offset, length);
    let done = 0;
    while (done < length) {
      const at = frameOf(pa, done);
      const chunk = Math.min(length - done, PAGE_SIZE - at.offset);
      const frame = this.#frames.get(at.pfn);
      if (frame) copyBytes(bytes, offset + done, frame.data, at.offset, chunk);
      else this.#stray++;
      done += chunk;
    }
  }
}

const EXACT_LIMIT = 2 ** 53;
/** Result of frameOf, reused: the accessors are synchronous and never re-entered. */
const position = { pfn: 0, offset: 0 };

/** The frame number and in-frame offset of `pa + delta`, with number arithmetic when the address is exact as a number. */
function frameOf(pa: bigint, delta: number): { readonly pfn: number; readonly offset: number } {
  // Rounding only ever moves a bigint of 2^53 or more to a number of 2^53 or more, so the test is exact.
  const at = Number(pa) + delta;
  if (at < EXACT_LIMIT) {
    position.pfn = Math.floor(at / PAGE_SIZE);
    position.offset = at - position.pfn * PAGE_SIZE;
  } else {
    const big = pa + BigInt(delta);
    position.pfn = Number(big >> 12n);
    position.offset = Number(big & 0xfffn);
  }
  return position;
}

function checkSpan(bytes: Uint8Array, offset: number, length: number): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > bytes.length) {
    throw new RangeError(`span ${offset}+${length} is outside a ${bytes.length}-byte buffer`);
  }
}

/** Below this a byte loop beats creating a subarray view for TypedArray.set. */
const SMALL_COPY = 64;

function copyBytes(src: Uint8Array, from: number, dst: Uint8Array, to: number, length: number): void {
  if (length <= SMALL_COPY) {
    for (let i = 0; i < length; i++) dst[to + i] = src[from + i]!;
  } else {
    dst.set(src.subarray(from, from + length), to);
  }
}
