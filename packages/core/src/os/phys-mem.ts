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
  readonly #frames = new Map<bigint, Frame>();
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
        this.#frames.delete(frame.pfn);
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
    this.#frames.set(pfn, frame);
    return frame;
  }

  /** The live frame with this number, if any. */
  frame(pfn: bigint): Frame | undefined {
    return this.#frames.get(pfn);
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
    let done = 0;
    while (done < length) {
      const at = pa + BigInt(done);
      const offset = Number(at & 0xfffn);
      const chunk = Math.min(length - done, PAGE_SIZE - offset);
      const frame = this.#frames.get(at >> 12n);
      if (frame) out.set(frame.data.subarray(offset, offset + chunk), done);
      else this.#stray++;
      done += chunk;
    }
    return out;
  }

  /** The hardware's view: writes by physical address, across frames. */
  write(pa: bigint, bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      const at = pa + BigInt(done);
      const offset = Number(at & 0xfffn);
      const chunk = Math.min(bytes.length - done, PAGE_SIZE - offset);
      const frame = this.#frames.get(at >> 12n);
      if (frame) frame.data.set(bytes.subarray(done, done + chunk), offset);
      else this.#stray++;
      done += chunk;
    }
  }
}
