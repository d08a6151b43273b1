import { describe, expect, it } from 'vitest';
import { PhysicalMemory, SimError } from '@vfiosim/core';
import { bytes } from './helpers.js';

describe('PhysicalMemory', () => {
  it('hands out zero-filled frames with increasing numbers from firstPfn', () => {
    const ram = new PhysicalMemory({ firstPfn: 0x100n });
    const a = ram.allocate();
    const b = ram.allocate();
    expect([a.pfn, b.pfn]).toEqual([0x100n, 0x101n]);
    expect(b.pa).toBe(0x101000n);
    expect(a.data.every((x) => x === 0)).toBe(true);
    expect(ram.allocatedFrames).toBe(2);
  });

  it('reuses the most recently freed frame first, zero-filled again', () => {
    const ram = new PhysicalMemory({ firstPfn: 0x10n });
    const a = ram.allocate();
    const b = ram.allocate();
    a.data[0] = 0xaa;
    a.put();
    b.put();
    expect(ram.allocatedFrames).toBe(0);
    const c = ram.allocate();
    expect(c.pfn).toBe(0x11n);
    const d = ram.allocate();
    expect(d.pfn).toBe(0x10n);
    expect(d.data[0]).toBe(0);
  });

  it('keeps a pinned frame after its last reference goes and frees it on the last unpin', () => {
    const ram = new PhysicalMemory();
    const frame = ram.allocate();
    frame.pin();
    frame.pin();
    expect(ram.pinnedFrames).toBe(1);
    frame.put();
    expect(frame.live).toBe(true);
    expect(ram.allocatedFrames).toBe(1);
    frame.unpin();
    expect(ram.allocatedFrames).toBe(1);
    frame.unpin();
    expect(frame.live).toBe(false);
    expect(ram.allocatedFrames).toBe(0);
    expect(ram.pinnedFrames).toBe(0);
  });

  it('reads and writes by physical address across a frame boundary', () => {
    const ram = new PhysicalMemory();
    const a = ram.allocate();
    const b = ram.allocate();
    expect(b.pfn).toBe(a.pfn + 1n);
    ram.write(a.pa + 4094n, bytes(1, 2, 3, 4));
    expect([a.data[4094], a.data[4095], b.data[0], b.data[1]]).toEqual([1, 2, 3, 4]);
    expect(ram.read(a.pa + 4095n, 2)).toEqual(bytes(2, 3));
    expect(ram.strayAccesses).toBe(0);
  });

  it('reads into part of a caller buffer and writes from part of one, across frames, small and large spans alike', () => {
    const ram = new PhysicalMemory();
    const a = ram.allocate();
    const b = ram.allocate();
    const src = Uint8Array.from({ length: 300 }, (_, i) => i & 0xff);
    ram.write(a.pa + 3900n, src, 100, 200);
    expect(a.data[3900]).toBe(100);
    expect(b.data[3]).toBe((100 + 199) & 0xff);
    const dst = new Uint8Array(210).fill(0xee);
    ram.readInto(a.pa + 3900n, dst, 5, 200);
    expect([...dst.subarray(5, 205)]).toEqual([...src.subarray(100, 300)]);
    expect([dst[4], dst[205]]).toEqual([0xee, 0xee]);
    const small = new Uint8Array(4);
    ram.readInto(b.pa + 2n, small);
    expect([...small]).toEqual([...src.subarray(298, 300), 0, 0]);
    expect(() => ram.readInto(a.pa, small, 2, 3)).toThrow(RangeError);
    expect(() => ram.write(a.pa, small, 3, 2)).toThrow(RangeError);
  });

  it('reads zeros into a caller buffer from free memory, also above 2^53, and counts the stray reads', () => {
    const ram = new PhysicalMemory({ firstPfn: 0x100n });
    const dst = new Uint8Array(8).fill(0xee);
    ram.readInto(0xffff_ffff_ffff_fff0n, dst);
    expect([...dst]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(ram.strayAccesses).toBe(1);
  });

  it('counts accesses to free memory as stray: reads see zeros, writes are dropped', () => {
    const ram = new PhysicalMemory({ firstPfn: 0x100n });
    ram.write(0x200000n, bytes(9));
    expect(ram.read(0x200000n, 1)).toEqual(bytes(0));
    expect(ram.strayAccesses).toBe(2);
    expect(ram.allocatedFrames).toBe(0);
  });

  it('lands a write to a freed, reused frame in its new owner', () => {
    const ram = new PhysicalMemory();
    const old = ram.allocate();
    const stalePa = old.pa;
    old.put();
    const reused = ram.allocate();
    ram.write(stalePa, bytes(0x5a));
    expect(reused.data[0]).toBe(0x5a);
    expect(ram.frame(reused.pfn)).toBe(reused);
  });

  it('answers ENOMEM when every frame is in use', () => {
    const ram = new PhysicalMemory({ totalFrames: 2n });
    ram.allocate();
    ram.allocate();
    const error = (() => {
      try {
        ram.allocate();
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(SimError);
    expect((error as SimError).errnoName).toBe('ENOMEM');
  });

  it('treats using a freed frame or unbalanced unpin as a model bug', () => {
    const ram = new PhysicalMemory();
    const frame = ram.allocate();
    expect(() => frame.unpin()).toThrow(/unpin without a pin/);
    frame.put();
    expect(() => frame.pin()).toThrow(/after free/);
  });
});
