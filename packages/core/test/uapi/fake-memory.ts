import { SimError, type UserMemory } from '@vfiosim/core';

const PAGE = 4096n;

/**
 * A page-granular user address space for uapi tests: only mapped pages can be
 * read or written, anything else is EFAULT, and a faulting copy changes
 * nothing.
 */
export class FakeMemory implements UserMemory {
  readonly #pages = new Map<bigint, Uint8Array>();

  /** Maps the pages covering [addr, addr + length), zero-filled. */
  map(addr: bigint, length: number): this {
    for (let page = addr / PAGE; page * PAGE < addr + BigInt(length); page++) {
      if (!this.#pages.has(page)) this.#pages.set(page, new Uint8Array(Number(PAGE)));
    }
    return this;
  }

  copyFromUser(addr: bigint, length: number): Uint8Array {
    this.#check(addr, length);
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      const a = addr + BigInt(i);
      out[i] = this.#pages.get(a / PAGE)![Number(a % PAGE)]!;
    }
    return out;
  }

  copyToUser(addr: bigint, bytes: Uint8Array): void {
    this.#check(addr, bytes.length);
    bytes.forEach((b, i) => {
      const a = addr + BigInt(i);
      this.#pages.get(a / PAGE)![Number(a % PAGE)] = b;
    });
  }

  /** Test-side write that bypasses nothing but the fault check. */
  poke(addr: bigint, bytes: ArrayLike<number>): void {
    this.copyToUser(addr, Uint8Array.from(bytes));
  }

  peek(addr: bigint, length: number): number[] {
    return [...this.copyFromUser(addr, length)];
  }

  #check(addr: bigint, length: number): void {
    for (let page = addr / PAGE; page * PAGE < addr + BigInt(length); page++) {
      if (!this.#pages.has(page)) {
        throw new SimError('BAD_ADDRESS', `0x${addr.toString(16)}+${length} touches unmapped page 0x${(page * PAGE).toString(16)}`);
      }
    }
  }
}
