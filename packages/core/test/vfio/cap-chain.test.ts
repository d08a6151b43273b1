import { describe, expect, it } from 'vitest';
import { CapChain, vfio_info_cap_header } from '@vfiosim/core';

function cap(id: number, length: number, fill: number): Uint8Array {
  const bytes = new Uint8Array(length).fill(fill);
  vfio_info_cap_header.encode({ id, version: 1, next: 0xdeadbeef }, bytes);
  return bytes;
}

describe('CapChain (vfio_info_cap_add)', () => {
  it('places each capability on an 8-byte boundary with zeroed padding and links them from the info struct start', () => {
    const chain = new CapChain(24);
    chain.add(cap(1, 12, 0x11));
    chain.add(cap(2, 16, 0x22));
    chain.add(cap(3, 9, 0x33));
    // 12 rounds to 16, 16 stays, 9 rounds to 16.
    expect(chain.size).toBe(48);
    const bytes = chain.bytes();
    const header = (at: number) => vfio_info_cap_header.decode(bytes.subarray(at, at + vfio_info_cap_header.size));
    expect(header(0)).toEqual({ id: 1, version: 1, next: 24 + 16 });
    expect(header(16)).toEqual({ id: 2, version: 1, next: 24 + 32 });
    expect(header(32)).toEqual({ id: 3, version: 1, next: 0 });
    expect([...bytes.subarray(8, 12)]).toEqual([0x11, 0x11, 0x11, 0x11]);
    expect([...bytes.subarray(12, 16)]).toEqual([0, 0, 0, 0]);
    expect([...bytes.subarray(41, 48)]).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  it('is empty until a capability is added', () => {
    const chain = new CapChain(16);
    expect(chain.size).toBe(0);
    expect(chain.bytes()).toEqual(new Uint8Array(0));
  });
});
