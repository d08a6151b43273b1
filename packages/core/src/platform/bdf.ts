import { SimError } from '../errors/index.js';

/**
 * A PCI address: segment (domain), bus, device and function. Linux names a
 * function `dddd:bb:dd.f` in sysfs (`dev_name()` of a pci_dev), always with
 * the domain, lower-case hex, two-digit bus and device.
 */
export interface Bdf {
  readonly domain: number;
  readonly bus: number;
  readonly device: number;
  readonly function: number;
}

export const PCI_MAX_DOMAIN = 0xffffffff;
export const PCI_MAX_BUS = 0xff;
export const PCI_MAX_DEVICE = 0x1f;
export const PCI_MAX_FUNCTION = 7;

const FULL_FORM = /^([0-9a-fA-F]{4,8}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-9a-fA-F])$/;
const SHORT_FORM = /^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F]$/;

/**
 * What is wrong with `text` as a PCI address, or null when it is one. The
 * answer is a sentence fragment meant to follow a field path, e.g.
 * `"0000:0a:00.9" has function 9; functions are 0-7`.
 */
export function bdfProblem(text: string): string | null {
  const match = FULL_FORM.exec(text);
  if (!match) {
    if (SHORT_FORM.test(text)) return `"${text}" lacks the domain; write it as 0000:${text.toLowerCase()}`;
    return `"${text}" is not a PCI address; expected dddd:bb:dd.f such as 0000:0a:00.1`;
  }
  const device = parseInt(match[3], 16);
  if (device > PCI_MAX_DEVICE) return `"${text}" has device 0x${match[3].toLowerCase()}; devices are 00-1f`;
  const fn = parseInt(match[4], 16);
  if (fn > PCI_MAX_FUNCTION) return `"${text}" has function ${match[4].toLowerCase()}; functions are 0-7`;
  return null;
}

/** Parses `dddd:bb:dd.f`; throws INVALID_BDF naming what is wrong. */
export function parseBdf(text: string): Bdf {
  const problem = bdfProblem(text);
  if (problem) throw new SimError('INVALID_BDF', problem);
  const match = FULL_FORM.exec(text)!;
  return Object.freeze({
    domain: parseInt(match[1], 16),
    bus: parseInt(match[2], 16),
    device: parseInt(match[3], 16),
    function: parseInt(match[4], 16),
  });
}

/** Builds a Bdf from its parts; throws INVALID_BDF for a part out of range. */
export function makeBdf(domain: number, bus: number, device: number, fn: number): Bdf {
  const parts: Array<[string, number, number]> = [
    ['domain', domain, PCI_MAX_DOMAIN],
    ['bus', bus, PCI_MAX_BUS],
    ['device', device, PCI_MAX_DEVICE],
    ['function', fn, PCI_MAX_FUNCTION],
  ];
  for (const [name, value, max] of parts) {
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new SimError('INVALID_BDF', `${name} ${value} is out of range; ${name}s are 0-0x${max.toString(16)}`);
    }
  }
  return Object.freeze({ domain, bus, device, function: fn });
}

/** `dddd:bb:dd.f`, as Linux's dev_name() of a PCI function. */
export function formatBdf(bdf: Bdf): string {
  return `${hex(bdf.domain, 4)}:${hex(bdf.bus, 2)}:${hex(bdf.device, 2)}.${bdf.function}`;
}

/** `dddd:bb`, the name Linux gives a PCI bus. */
export function formatBus(domain: number, bus: number): string {
  return `${hex(domain, 4)}:${hex(bus, 2)}`;
}

/** PCI_DEVFN(slot, func): the 8-bit device/function number. */
export function pciDevfn(device: number, fn: number): number {
  return ((device & 0x1f) << 3) | (fn & 0x07);
}

/** PCI_SLOT(devfn) */
export function pciSlot(devfn: number): number {
  return (devfn >> 3) & 0x1f;
}

/** PCI_FUNC(devfn) */
export function pciFunc(devfn: number): number {
  return devfn & 0x07;
}

/** The devfn of an address. */
export function bdfDevfn(bdf: Bdf): number {
  return pciDevfn(bdf.device, bdf.function);
}

/** The 16-bit requester (routing) ID, bus << 8 | devfn: PCI_DEVID(bus, devfn). */
export function requesterId(bdf: Bdf): number {
  return (bdf.bus << 8) | bdfDevfn(bdf);
}

/** The address of `devfn` on a bus. */
export function bdfFromDevfn(domain: number, bus: number, devfn: number): Bdf {
  return makeBdf(domain, bus, pciSlot(devfn), pciFunc(devfn));
}

/** Orders addresses as lspci and sysfs list them: domain, bus, devfn. */
export function compareBdf(a: Bdf, b: Bdf): number {
  return a.domain - b.domain || a.bus - b.bus || a.device - b.device || a.function - b.function;
}

export function bdfEquals(a: Bdf, b: Bdf): boolean {
  return compareBdf(a, b) === 0;
}

/** A copy of `items` sorted by the address `key` gives each. */
export function sortByBdf<T>(items: Iterable<T>, key: (item: T) => Bdf): T[] {
  return [...items].sort((a, b) => compareBdf(key(a), key(b)));
}

function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}
