import { z } from 'zod';
import { SimError } from '../errors/index.js';
import { bdfProblem } from './bdf.js';
import { enumeratePlatform } from './enumerate.js';
import { formatIssuePath, planHost } from './host-plan.js';
import { IommuGroups } from './iommu-groups.js';
import { Platform } from './platform.js';
import { Topology, type PciBus } from './topology.js';

/**
 * The host description: which PCI hardware a simulated host has. Bridges
 * (root ports, switch ports, PCIe-to-PCI bridges) and devices are listed
 * flat by address, the way `lspci` shows them; each bridge names the bus it
 * leads to. Numbers can be given as JSON numbers or "0x..." strings, sizes
 * also as "16K", "256M", "8G".
 *
 * A short entry gets a realistic device: a PCIe endpoint with PM
 * (NoSoftReset set), MSI, MSI-X (8 vectors in BAR 0), the PCIe capability
 * with FLR, AER, and one 16 KiB 64-bit BAR.
 */

const HEX = /^0x[0-9a-f]+$/i;
const SIZE = /^(\d+)\s*([kmgt])?(?:i?b)?$/i;

function hexNumber(bits: number) {
  const max = 2 ** bits - 1;
  return z.union([z.number(), z.string()]).transform((value, ctx) => {
    let n: number;
    if (typeof value === 'number') n = value;
    else if (HEX.test(value)) n = parseInt(value, 16);
    else {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a number; write 0x-prefixed hex or a JSON number` });
      return z.NEVER;
    }
    if (!Number.isInteger(n) || n < 0 || n > max) {
      ctx.addIssue({ code: 'custom', message: `${typeof value === 'string' ? value : n} does not fit ${bits} bits` });
      return z.NEVER;
    }
    return n;
  });
}

const sizeSchema = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value > 0) return BigInt(value);
    ctx.addIssue({ code: 'custom', message: `size ${value} is not a positive integer` });
    return z.NEVER;
  }
  if (HEX.test(value)) return BigInt(value);
  const match = SIZE.exec(value.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a size; write bytes, 0x-hex or a K/M/G/T suffix (e.g. "16K")` });
    return z.NEVER;
  }
  const shift = { '': 0n, k: 10n, m: 20n, g: 30n, t: 40n }[(match[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return BigInt(match[1]) << shift;
});

const bdfSchema = z.string().superRefine((value, ctx) => {
  const problem = bdfProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const busSchema = z.string().superRefine((value, ctx) => {
  if (!/^[0-9a-f]{4,8}:[0-9a-f]{2}$/i.test(value)) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a bus; expected dddd:bb such as 0000:80` });
  }
});

const capOffset = hexNumber(12);

const barSchema = z.strictObject({
  index: z.number().int().min(0).max(5),
  type: z.enum(['mem32', 'mem64', 'io']).default('mem64'),
  size: sizeSchema,
  prefetchable: z.boolean().default(false),
});

const pmeState = z.enum(['D0', 'D1', 'D2', 'D3hot', 'D3cold']);

const pmSchema = z.strictObject({
  /** Default: set for PCIe functions, clear for conventional PCI ones. */
  noSoftReset: z.boolean().optional(),
  d1: z.boolean().default(false),
  d2: z.boolean().default(false),
  pme: z.array(pmeState).default(['D0', 'D3hot', 'D3cold']),
  offset: capOffset.optional(),
});

const msiSchema = z.strictObject({
  vectors: z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8), z.literal(16), z.literal(32)]).default(1),
  address64: z.boolean().default(true),
  perVectorMask: z.boolean().default(true),
  offset: capOffset.optional(),
});

const msixSchema = z.strictObject({
  tableSize: z.number().int().min(1).max(2048).default(8),
  tableBar: z.number().int().min(0).max(5).optional(),
  tableOffset: hexNumber(32).optional(),
  pbaBar: z.number().int().min(0).max(5).optional(),
  pbaOffset: hexNumber(32).optional(),
  offset: capOffset.optional(),
});

const linkSchema = z.strictObject({
  /** Generation: 1 = 2.5 GT/s, 2 = 5, 3 = 8, 4 = 16, 5 = 32 GT/s. */
  speed: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4), z.literal(5)]).default(3),
  width: z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8), z.literal(16), z.literal(32)]).default(8),
});

const pcieSchema = z.strictObject({
  type: z.enum(['endpoint', 'legacy-endpoint', 'rc-endpoint']).optional(),
  version: z.union([z.literal(1), z.literal(2)]).default(2),
  flr: z.boolean().default(true),
  maxPayload: z.union([z.literal(128), z.literal(256), z.literal(512), z.literal(1024), z.literal(2048), z.literal(4096)]).default(256),
  link: linkSchema.optional(),
  offset: capOffset.optional(),
});

const afSchema = z.strictObject({
  flr: z.boolean().default(true),
  transactionsPending: z.boolean().default(true),
  offset: capOffset.optional(),
});

const aerSchema = z.strictObject({ ecrc: z.boolean().default(false), offset: capOffset.optional() });

const acsSchema = z.strictObject({
  sv: z.boolean().default(false),
  tb: z.boolean().default(false),
  rr: z.boolean().default(false),
  cr: z.boolean().default(false),
  uf: z.boolean().default(false),
  ec: z.boolean().default(false),
  dt: z.boolean().default(false),
  egressBits: z.number().int().min(0).max(255).default(0),
  offset: capOffset.optional(),
});

const atsSchema = z.strictObject({
  invalidateQueueDepth: z.number().int().min(0).max(31).default(0),
  pageAligned: z.boolean().default(true),
  offset: capOffset.optional(),
});

const pasidSchema = z.strictObject({
  width: z.number().int().min(1).max(20).default(20),
  exec: z.boolean().default(false),
  privileged: z.boolean().default(false),
  offset: capOffset.optional(),
});

const priSchema = z.strictObject({
  outstandingRequests: z.number().int().min(1).max(0xffffffff).default(512),
  pasidRequired: z.boolean().default(false),
  offset: capOffset.optional(),
});

/** `true` turns a capability on with its defaults, `false` off, an object configures it. */
function toggle<T extends z.ZodType>(schema: T) {
  return z.union([z.boolean(), schema]);
}

const capabilitiesSchema = z.strictObject({
  pm: toggle(pmSchema).optional(),
  msi: toggle(msiSchema).optional(),
  msix: toggle(msixSchema).optional(),
  pcie: toggle(pcieSchema).optional(),
  af: toggle(afSchema).optional(),
});

const vfExtendedCapabilitiesSchema = z.strictObject({
  aer: toggle(aerSchema).optional(),
  ats: toggle(atsSchema).optional(),
  pasid: toggle(pasidSchema).optional(),
  pri: toggle(priSchema).optional(),
});

const resetsSchema = z.strictObject({
  acpi: z.boolean().default(false),
  deviceSpecific: z.boolean().default(false),
});

const sriovSchema = z.strictObject({
  totalVfs: z.number().int().min(1).max(0xffff),
  /** VFs enabled at boot (NumVFs with VF Enable set). */
  numVfs: z.number().int().min(0).max(0xffff).default(0),
  /** Default: VF 0 is function 0 of the next device number. */
  vfOffset: z.number().int().min(1).max(0xffff).optional(),
  vfStride: z.number().int().min(1).max(0xffff).default(1),
  vfDeviceId: hexNumber(16).optional(),
  supportedPageSizes: hexNumber(32).default(0x553),
  vfBars: z.array(barSchema).default(() => [{ index: 0, type: 'mem64' as const, size: 0x4000n, prefetchable: true }]),
  vf: z
    .strictObject({
      label: z.string().optional(),
      classCode: hexNumber(24).optional(),
      revision: hexNumber(8).optional(),
      subsystemVendorId: hexNumber(16).optional(),
      subsystemId: hexNumber(16).optional(),
      capabilities: capabilitiesSchema.default({}),
      extendedCapabilities: vfExtendedCapabilitiesSchema.default({}),
      resets: resetsSchema.default({ acpi: false, deviceSpecific: false }),
    })
    .default({
      capabilities: {},
      extendedCapabilities: {},
      resets: { acpi: false, deviceSpecific: false },
    }),
  offset: capOffset.optional(),
});

const extendedCapabilitiesSchema = z.strictObject({
  aer: toggle(aerSchema).optional(),
  acs: toggle(acsSchema).optional(),
  ats: toggle(atsSchema).optional(),
  pasid: toggle(pasidSchema).optional(),
  pri: toggle(priSchema).optional(),
  sriov: sriovSchema.optional(),
});

const deviceSchema = z.strictObject({
  bdf: bdfSchema,
  label: z.string().optional(),
  vendorId: hexNumber(16),
  deviceId: hexNumber(16),
  revision: hexNumber(8).default(0),
  classCode: hexNumber(24).default(0xff0000),
  subsystemVendorId: hexNumber(16).optional(),
  subsystemId: hexNumber(16).optional(),
  interruptPin: z.number().int().min(0).max(4).default(1),
  multifunction: z.boolean().optional(),
  bars: z.array(barSchema).default(() => [{ index: 0, type: 'mem64' as const, size: 0x4000n, prefetchable: false }]),
  romSize: sizeSchema.optional(),
  capabilities: capabilitiesSchema.default({}),
  extendedCapabilities: extendedCapabilitiesSchema.default({}),
  resets: resetsSchema.default({ acpi: false, deviceSpecific: false }),
  noIommu: z.boolean().default(false),
  /** Driver to bind at boot, as driver_override; read by host composition, not by the platform. */
  driver: z.string().min(1).optional(),
});

const bridgeKind = z.enum(['root-port', 'upstream-port', 'downstream-port', 'pcie-to-pci', 'pci-bridge']);

const bridgeSchema = z.strictObject({
  bdf: bdfSchema,
  kind: bridgeKind,
  secondaryBus: hexNumber(8),
  label: z.string().optional(),
  vendorId: hexNumber(16).optional(),
  deviceId: hexNumber(16).optional(),
  revision: hexNumber(8).default(0),
  multifunction: z.boolean().optional(),
  /** A slot on a root or downstream port; hot-plug capable by default. */
  slot: z.strictObject({ number: z.number().int().min(0).max(0x1fff), hotplug: z.boolean().default(true) }).optional(),
  bars: z.array(barSchema).default([]),
  capabilities: z
    .strictObject({
      pm: toggle(pmSchema).optional(),
      msi: toggle(msiSchema).optional(),
      pcie: z
        .strictObject({
          version: z.union([z.literal(1), z.literal(2)]).default(2),
          maxPayload: pcieSchema.shape.maxPayload,
          link: linkSchema.optional(),
          offset: capOffset.optional(),
        })
        .optional(),
    })
    .default({}),
  extendedCapabilities: z.strictObject({ aer: toggle(aerSchema).optional(), acs: toggle(acsSchema).optional() }).default({}),
  noIommu: z.boolean().default(false),
});

const structuralSchema = z.strictObject({
  /** Root buses; by default bus 00 of every domain the description uses. */
  rootBuses: z.array(busSchema).optional(),
  bridges: z.array(bridgeSchema).default([]),
  devices: z.array(deviceSchema).default([]),
});

export type ParsedHostDescription = z.output<typeof structuralSchema>;
export type ParsedDevice = z.output<typeof deviceSchema>;
export type ParsedBridge = z.output<typeof bridgeSchema>;

/**
 * The host description schema: structure and defaults, plus the semantic
 * rules (addresses unique, every bus provided by a root or a bridge, bridges
 * where PCIe puts them, BARs that fit, MSI-X inside a BAR, VFs that fit).
 * Every issue carries the path of the offending field.
 */
export const hostDescriptionSchema = structuralSchema.superRefine((description, ctx) => {
  for (const problem of planHost(description).problems) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
});

/** What a user writes. */
export type HostDescription = z.input<typeof hostDescriptionSchema>;

function invalid(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): SimError {
  const lines = issues.map((issue) => `${formatIssuePath(issue.path)}: ${issue.message}`);
  return new SimError('INVALID_HOST_DESCRIPTION', lines.join('\n'));
}

/**
 * Validates a host description and builds the machine it describes, as
 * firmware and Linux leave it after boot: bus numbers and BAR addresses
 * assigned, ACS enabled, the VFs asked for enabled, IOMMU groups formed.
 * Throws SimError('INVALID_HOST_DESCRIPTION') naming each offending path.
 */
export function buildPlatform(description: unknown = {}): Platform {
  const parsed = structuralSchema.safeParse(description);
  if (!parsed.success) throw invalid(parsed.error.issues);
  const { plan, problems } = planHost(parsed.data);
  if (!plan) throw invalid(problems);

  const topology = new Topology();
  const buses = new Map<string, PciBus>();
  const key = (domain: number, bus: number) => `${domain}:${bus}`;
  for (const root of plan.rootBuses) buses.set(key(root.domain, root.bus), topology.addRootBus(root.domain, root.bus));

  // Parents before children: a bridge's secondary bus exists before anything on it is placed.
  const pending = [...plan.functions];
  while (pending.length > 0) {
    const next = pending.findIndex((f) => buses.has(key(f.spec.bdf.domain, f.spec.bdf.bus)));
    if (next < 0) throw new SimError('INVALID_HOST_DESCRIPTION', `no bus for ${pending.map((f) => f.name).join(', ')}`);
    const [item] = pending.splice(next, 1);
    const bus = buses.get(key(item.spec.bdf.domain, item.spec.bdf.bus))!;
    const fn = topology.addFunction(item.spec, bus);
    if (item.bridge) {
      const secondary = topology.addSecondaryBus(fn, item.bridge.secondaryBus, {
        conventional: item.bridge.conventional,
        slot: item.bridge.slot,
      });
      secondary.subordinateNumber = item.bridge.subordinateBus;
      buses.set(key(fn.bdf.domain, item.bridge.secondaryBus), secondary);
    }
  }

  enumeratePlatform(topology);
  for (const boot of plan.sriovAtBoot) topology.enableSriov(topology.get(boot.bdf), boot.numVfs);
  return new Platform(topology, new IommuGroups(topology));
}
