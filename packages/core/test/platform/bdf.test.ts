import { describe, expect, it } from 'vitest';
import {
  bdfFromDevfn,
  compareBdf,
  formatBdf,
  makeBdf,
  parseBdf,
  pciDevfn,
  pciFunc,
  pciSlot,
  requesterId,
  SimError,
  sortByBdf,
} from '@vfiosim/core';

function bdfError(text: string): SimError {
  try {
    parseBdf(text);
  } catch (error) {
    if (error instanceof SimError) return error;
    throw error;
  }
  throw new Error(`${text} parsed`);
}

describe('PCI addresses', () => {
  it('parses dddd:bb:dd.f into its parts and formats it back', () => {
    const bdf = parseBdf('0000:0a:00.1');
    expect(bdf).toEqual({ domain: 0, bus: 0x0a, device: 0, function: 1 });
    expect(formatBdf(bdf)).toBe('0000:0a:00.1');
  });

  it('accepts upper case and longer domains, and formats lower case', () => {
    expect(formatBdf(parseBdf('ABCD:0A:1F.7'))).toBe('abcd:0a:1f.7');
    expect(parseBdf('10000:00:00.0').domain).toBe(0x10000);
  });

  it('rejects function 8-f with INVALID_BDF naming the function', () => {
    const error = bdfError('0000:0a:00.9');
    expect(error.code).toBe('INVALID_BDF');
    expect(error.errno).toBe(22);
    expect(error.message).toBe('EINVAL: "0000:0a:00.9" has function 9; functions are 0-7');
  });

  it('rejects device numbers above 0x1f', () => {
    expect(bdfError('0000:0a:20.0').message).toContain('"0000:0a:20.0" has device 0x20; devices are 00-1f');
  });

  it('tells a short lspci-style address that it lacks the domain', () => {
    expect(bdfError('0a:00.1').message).toContain('"0a:00.1" lacks the domain; write it as 0000:0a:00.1');
  });

  it('rejects text that is no address at all', () => {
    for (const text of ['', 'eth0', '0000:0a:00', '0000:0a:00.1 ', '0000:g0:00.0', '000:0a:00.0']) {
      expect(bdfError(text).message).toContain('is not a PCI address');
    }
  });

  it('rejects parts out of range when built from numbers', () => {
    expect(() => makeBdf(0, 256, 0, 0)).toThrow(/bus 256 is out of range/);
    expect(() => makeBdf(0, 0, 32, 0)).toThrow(/device 32 is out of range/);
    expect(() => makeBdf(0, 0, 0, 8)).toThrow(/function 8 is out of range/);
    expect(() => makeBdf(-1, 0, 0, 0)).toThrow(SimError);
  });

  it('encodes devfn as device << 3 | function, and the requester ID as bus << 8 | devfn', () => {
    expect(pciDevfn(0x1f, 7)).toBe(0xff);
    expect(pciDevfn(0x02, 1)).toBe(0x11);
    expect(pciSlot(0x11)).toBe(2);
    expect(pciFunc(0x11)).toBe(1);
    expect(requesterId(parseBdf('0000:3b:00.1'))).toBe(0x3b01);
    expect(bdfFromDevfn(0, 0x3b, 0x0a)).toEqual({ domain: 0, bus: 0x3b, device: 1, function: 2 });
  });

  it('orders by domain, bus, device, function', () => {
    const texts = ['0001:00:00.0', '0000:0a:00.1', '0000:00:1f.3', '0000:0a:00.0', '0000:00:02.0'];
    const sorted = sortByBdf(texts.map(parseBdf), (b) => b).map(formatBdf);
    expect(sorted).toEqual(['0000:00:02.0', '0000:00:1f.3', '0000:0a:00.0', '0000:0a:00.1', '0001:00:00.0']);
    expect(compareBdf(parseBdf('0000:00:00.0'), parseBdf('0000:00:00.0'))).toBe(0);
  });
});
