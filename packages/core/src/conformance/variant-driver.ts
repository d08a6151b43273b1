import { AssertionError } from 'node:assert';
import { pciSetIntxLevel, pciSignalMsi } from '../platform/interrupts.js';
import { VfioPciCoreDevice } from '../pci-core/vfio-pci-core-device.js';
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CAPABILITY_LIST,
  PCI_CLASS_DEVICE,
  PCI_CLASS_PROG,
  PCI_CLASS_REVISION,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_PIN,
  PCI_REVISION_ID,
  PCI_ROM_ADDRESS,
  PCI_ROM_ADDRESS_MASK,
  PCI_STD_NUM_BARS,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from '../platform/pci-regs.js';
import {
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_STATE_RUNNING,
  VFIO_DEVICE_STATE_STOP,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_INFO_FLAG_CAPS,
  vfio_device_feature_migration,
  vfio_info_cap_header,
  vfio_region_info,
  vfio_region_info_cap_type,
} from '../uapi/index.js';
import { bindDevice, type BoundDevice } from './bound-device.js';
import type { ConformanceCase } from './case.js';
import { DeviceSession } from './device-session.js';
import { expectEqual, expectRc, expectThat, rule, setupOk, type Rule } from './expect.js';
import { migNonStates, migPath, migStateName, migStates, opensDataFd } from './mig-fsm-oracle.js';
import type { VariantDriverSubject } from './variant-subject.js';

/*
 * The variant driver conformance suite: what every vfio-pci-core driver
 * (vfio-pci itself, or a vendor variant that taps the core's hooks) must
 * answer on its device fd.
 *
 *   config     identity registers read as the function's; BAR sizing
 *              returns the size mask GET_REGION_INFO reports and never
 *              touches the real BAR; read-only registers stay read-only;
 *              memory enable reaches the device
 *   regions    every index below num_regions answers at index << 40, short
 *              argsz is EINVAL, device-specific regions carry their type
 *   reset      VFIO_DEVICE_RESET follows the RESET flag, resets the function
 *              with the hooks in order, keeps the user's config and
 *              interrupt setup; the last close tears interrupts down and
 *              resets
 *   migration  the flags, every arc the flags allow along the kernel's path
 *              with the data fd where the uAPI puts one, EINVAL leaving the
 *              state alone, reset back to RUNNING
 *
 * Public API: variantDriverConformance()
 */

const CONFORMANCE_TAP = { name: 'vfiosim-conformance' };

function defineCase(name: string, body: () => void): ConformanceCase {
  return { name, run: body };
}

function open(subject: VariantDriverSubject): DeviceSession {
  return new DeviceSession(bindDevice(subject));
}

function hex(value: number | bigint): string {
  return `0x${value.toString(16)}`;
}

/** vfio-pci-core's hooks on the device, recording every reset step as "hook:cause[:method]". */
function recordResets(dev: BoundDevice): string[] {
  if (!(dev.vdev instanceof VfioPciCoreDevice)) {
    throw new AssertionError({ message: `setup failed: ${dev.vdev.name} is not a VfioPciCoreDevice; the variant suite is for vfio-pci-core drivers` });
  }
  const events: string[] = [];
  const { hooks } = dev.vdev;
  hooks.beforeReset.tap(CONFORMANCE_TAP, ({ cause }) => events.push(`beforeReset:${cause}`));
  hooks.reset.tap(CONFORMANCE_TAP, ({ cause, method }) => events.push(`reset:${cause}:${method}`));
  hooks.afterReset.tap(CONFORMANCE_TAP, ({ cause }) => events.push(`afterReset:${cause}`));
  return events;
}

// ------------------------------------------------------------ config space

function configCases(subject: VariantDriverSubject): ConformanceCase[] {
  return [
    defineCase('the config region reads the function\'s vendor id, device id and class code', () => {
      const s = open(subject);
      const { fn } = s.dev;
      const r = rule('pread of the identity registers through the config region', 'vfio-pci-core\'s virtual config space starts as a copy of the function\'s, and ids are never rewritten');
      expectEqual(s.cfgRead(PCI_VENDOR_ID, 2), fn.vendorId, r, 'vendor id');
      expectEqual(s.cfgRead(PCI_DEVICE_ID, 2), fn.deviceId, r, 'device id');
      expectEqual(s.cfgRead(PCI_CLASS_REVISION, 4) >>> 8, fn.classCode, r, 'class code');
    }),
    defineCase('sizing a BAR through the config region reads back the size GET_REGION_INFO reports, leaving the real BAR alone', () => {
      const s = open(subject);
      const { fn } = s.dev;
      for (let bar = 0; bar < PCI_STD_NUM_BARS; bar++) {
        const offset = PCI_BASE_ADDRESS_0 + 4 * bar;
        const info = s.regionInfo(bar);
        expectRc(info.rc, 0, rule(`VFIO_DEVICE_GET_REGION_INFO of BAR ${bar}`, 'every BAR index answers, with size 0 for an unimplemented BAR'));
        if (info.info.size === 0n) continue;
        const size = info.info.size;
        const original = s.cfgRead(offset, 4);
        const hardware = fn.config.read(offset, 4);
        const io = (original & PCI_BASE_ADDRESS_SPACE_IO) !== 0;
        const flagBits = io ? 0x3 : 0xf;
        const wide = !io && (original & PCI_BASE_ADDRESS_MEM_TYPE_64) !== 0;
        const r = rule(
          `BAR ${bar} (${io ? 'I/O' : wide ? '64-bit memory' : '32-bit memory'}, region size ${hex(size)}) written with all ones`,
          'vfio_bar_fixup() masks the virtual BAR with ~(size - 1) and keeps its type bits, so a sizing write reads back the size; '
            + 'BARs are virtualized and the device\'s own register is never written',
        );
        s.cfgWrite(offset, 4, 0xffffffff);
        const expected = ((Number(~(size - 1n) & 0xffffffffn) & ~flagBits) | (original & flagBits)) >>> 0;
        expectEqual(s.cfgRead(offset, 4), expected, r, `BAR ${bar} after the sizing write`);
        if (wide) {
          const upper = s.cfgRead(offset + 4, 4);
          s.cfgWrite(offset + 4, 4, 0xffffffff);
          expectEqual(s.cfgRead(offset + 4, 4), Number((~(size - 1n) >> 32n) & 0xffffffffn), r, `upper half of BAR ${bar} after the sizing write`);
          s.cfgWrite(offset + 4, 4, upper);
        }
        s.cfgWrite(offset, 4, original);
        expectEqual(s.cfgRead(offset, 4), original, r, `BAR ${bar} after writing its address back`);
        expectEqual(fn.config.read(offset, 4), hardware, r, `the function's own BAR ${bar}`);
        if (wide) bar++;
      }
      const rom = s.regionInfo(VFIO_PCI_ROM_REGION_INDEX);
      if (rom.rc === 0 && rom.info.size > 0n) {
        const r = rule(
          `the ROM BAR (region size ${hex(rom.info.size)}) written with the address mask`,
          'vfio_bar_fixup() masks the virtual ROM BAR with ~(size - 1) | PCI_ROM_ADDRESS_ENABLE',
        );
        const original = s.cfgRead(PCI_ROM_ADDRESS, 4);
        s.cfgWrite(PCI_ROM_ADDRESS, 4, PCI_ROM_ADDRESS_MASK);
        expectEqual(s.cfgRead(PCI_ROM_ADDRESS, 4), (PCI_ROM_ADDRESS_MASK & Number(~(rom.info.size - 1n) & 0xffffffffn)) >>> 0, r, 'ROM BAR after the sizing write');
        s.cfgWrite(PCI_ROM_ADDRESS, 4, original);
      }
    }),
    defineCase('read-only header registers keep their value, in the virtual and the real config space, when written', () => {
      const s = open(subject);
      const { fn } = s.dev;
      const registers: ReadonlyArray<readonly [string, number, 1 | 2]> = [
        ['vendor id', PCI_VENDOR_ID, 2],
        ['device id', PCI_DEVICE_ID, 2],
        ['revision id', PCI_REVISION_ID, 1],
        ['programming interface', PCI_CLASS_PROG, 1],
        ['class', PCI_CLASS_DEVICE, 2],
        ['header type', PCI_HEADER_TYPE, 1],
        ['subsystem vendor id', PCI_SUBSYSTEM_VENDOR_ID, 2],
        ['subsystem id', PCI_SUBSYSTEM_ID, 2],
        ['capability pointer', PCI_CAPABILITY_LIST, 1],
        ['interrupt pin', PCI_INTERRUPT_PIN, 1],
      ];
      for (const [name, offset, size] of registers) {
        const r = rule(
          `pwrite of the complement of the ${name} (config offset ${hex(offset)})`,
          'the permission table of vfio_pci_config.c gives these registers no writable bits: the write is accepted and dropped',
        );
        const before = s.cfgRead(offset, size);
        const hardware = fn.config.read(offset, size);
        s.cfgWrite(offset, size, ~before & (size === 1 ? 0xff : 0xffff));
        expectEqual(s.cfgRead(offset, size), before, r, `${name} read back`);
        expectEqual(fn.config.read(offset, size), hardware, r, `the function's own ${name}`);
      }
    }),
    defineCase('the memory-enable bit written to the command register reaches the device and reads back', () => {
      const s = open(subject);
      const { fn } = s.dev;
      const r = rule(
        'pwrite of PCI_COMMAND with PCI_COMMAND_MEMORY set, then clear',
        'only INTx-disable of the command register is virtualized; memory enable is written through to the device and read back from it',
      );
      const command = s.cfgRead(PCI_COMMAND, 2);
      s.cfgWrite(PCI_COMMAND, 2, command | PCI_COMMAND_MEMORY);
      expectEqual(s.cfgRead(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY, r, 'memory enable read back after setting it');
      expectEqual(fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY, r, 'the function\'s memory enable after setting it');
      s.cfgWrite(PCI_COMMAND, 2, command & ~PCI_COMMAND_MEMORY);
      expectEqual(s.cfgRead(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, 0, r, 'memory enable read back after clearing it');
      expectEqual(fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, 0, r, 'the function\'s memory enable after clearing it');
    }),
  ];
}

// ------------------------------------------------------------ regions

function isVga(classCode: number): boolean {
  return classCode >> 8 === 0x0300;
}

function numRegions(s: DeviceSession): number {
  const { rc, info } = s.deviceInfo();
  const r = rule('VFIO_DEVICE_GET_INFO', 'a vfio-pci-core device reports VFIO_DEVICE_FLAGS_PCI and at least the VFIO_PCI_NUM_REGIONS fixed regions');
  expectRc(rc, 0, r);
  expectEqual(info.flags & VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_PCI, r, 'VFIO_DEVICE_FLAGS_PCI');
  expectThat(info.num_regions >= VFIO_PCI_NUM_REGIONS, r, `num_regions is ${info.num_regions}`);
  return info.num_regions;
}

/** The VFIO_REGION_INFO_CAP_TYPE of a region, walking its capability chain; null if absent. */
function regionType(bytes: Uint8Array, capOffset: number): { type: number; subtype: number } | null {
  const seen = new Set<number>();
  for (let at = capOffset; at !== 0 && !seen.has(at) && at + vfio_info_cap_header.size <= bytes.length; ) {
    seen.add(at);
    const header = vfio_info_cap_header.decode(bytes, at);
    if (header.id === VFIO_REGION_INFO_CAP_TYPE && at + vfio_region_info_cap_type.size <= bytes.length) {
      const cap = vfio_region_info_cap_type.decode(bytes, at);
      return { type: cap.type, subtype: cap.subtype };
    }
    at = header.next;
  }
  return null;
}

function regionCases(subject: VariantDriverSubject): ConformanceCase[] {
  return [
    defineCase('VFIO_DEVICE_GET_REGION_INFO answers every index below num_regions at offset index << 40, and EINVAL past them', () => {
      const s = open(subject);
      const num = numRegions(s);
      const vga = isVga(s.dev.fn.classCode);
      for (let index = 0; index < num; index++) {
        const { rc, info } = s.regionInfo(index);
        if (index === VFIO_PCI_VGA_REGION_INDEX && (!vga || rc < 0)) {
          expectRc(rc, 'EINVAL', rule(
            `VFIO_DEVICE_GET_REGION_INFO of the VGA region (${vga ? 'VGA device without VGA support' : 'not a VGA device'})`,
            'the legacy VGA region exists only for a VGA-class device with vfio-pci-core\'s VGA support on: EINVAL otherwise',
          ));
          continue;
        }
        const r = rule(
          `VFIO_DEVICE_GET_REGION_INFO of region ${index}`,
          'every region index below num_regions answers, at offset VFIO_PCI_INDEX_TO_OFFSET(index) = index << 40, with index unchanged',
        );
        expectRc(rc, 0, r);
        expectEqual(info.offset, BigInt(index) << 40n, r, 'offset');
        expectEqual(info.index, index, r, 'index');
      }
      expectRc(s.regionInfo(num).rc, 'EINVAL', rule(
        `VFIO_DEVICE_GET_REGION_INFO of index ${num} (= num_regions)`,
        'an index past the fixed and the device-specific regions is EINVAL',
      ));
    }),
    defineCase('VFIO_DEVICE_GET_REGION_INFO refuses argsz below the struct with EINVAL', () => {
      const s = open(subject);
      const num = numRegions(s);
      for (let index = 0; index < num; index++) {
        for (const argsz of [0, vfio_region_info.size - 1]) {
          expectRc(s.regionInfo(index, argsz).rc, 'EINVAL', rule(
            `VFIO_DEVICE_GET_REGION_INFO of region ${index} with argsz ${argsz}`,
            `argsz below offsetofend(struct vfio_region_info, offset) = ${vfio_region_info.size} is EINVAL`,
          ));
        }
      }
    }),
    defineCase('device-specific regions carry a VFIO_REGION_INFO_CAP_TYPE capability with their type and subtype', () => {
      const s = open(subject);
      const num = numRegions(s);
      const found: { type: number; subtype: number }[] = [];
      for (let index = VFIO_PCI_NUM_REGIONS; index < num; index++) {
        const r = rule(
          `VFIO_DEVICE_GET_REGION_INFO of device-specific region ${index}`,
          'a region the driver registered has VFIO_REGION_INFO_FLAG_CAPS and a region-type capability; an argsz too small '
            + 'for the chain gets argsz raised to the size it needs and cap_offset 0, and with that argsz the chain follows the struct',
        );
        const short = s.regionInfo(index);
        expectRc(short.rc, 0, r);
        expectEqual(short.info.flags & VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_CAPS, r, 'VFIO_REGION_INFO_FLAG_CAPS');
        expectEqual(short.info.cap_offset, 0, r, 'cap_offset for a struct-sized argsz');
        expectThat(short.info.argsz > vfio_region_info.size, r, `argsz written back is ${short.info.argsz}, no room for a capability`);
        const full = s.regionInfo(index, short.info.argsz);
        expectRc(full.rc, 0, r);
        expectEqual(full.info.cap_offset, vfio_region_info.size, r, 'cap_offset with the argsz the kernel asked for');
        const type = regionType(full.bytes, full.info.cap_offset);
        expectThat(type !== null, r, 'no VFIO_REGION_INFO_CAP_TYPE in the capability chain');
        found.push(type);
      }
      expectEqual(found, [...(subject.deviceRegions ?? [])], rule(
        'the device-specific regions of the device',
        'the regions the driver registers are exactly the ones the subject declares, in index order',
      ), 'region types');
    }),
  ];
}

// ------------------------------------------------------------ reset and interrupts

/** An interrupt the device can raise from its side, and the SET_IRQS index that forwards it. */
function pickInterrupt(s: DeviceSession): { index: number; name: string; raise(): void } | null {
  const { fn } = s.dev;
  if (s.cfgRead(PCI_INTERRUPT_PIN, 1) !== 0 && s.irqInfo(VFIO_PCI_INTX_IRQ_INDEX).info.count === 1) {
    return { index: VFIO_PCI_INTX_IRQ_INDEX, name: 'INTx', raise: () => pciSetIntxLevel(fn, true) };
  }
  if (s.irqInfo(VFIO_PCI_MSIX_IRQ_INDEX).info.count > 0) {
    return { index: VFIO_PCI_MSIX_IRQ_INDEX, name: 'MSI-X vector 0', raise: () => pciSignalMsi(fn, 0) };
  }
  if (s.irqInfo(VFIO_PCI_MSI_IRQ_INDEX).info.count > 0) {
    return { index: VFIO_PCI_MSI_IRQ_INDEX, name: 'MSI vector 0', raise: () => pciSignalMsi(fn, 0) };
  }
  return null;
}

/** An eventfd wired to the device's interrupt with SET_IRQS; null for a device without interrupts. */
function wireInterrupt(s: DeviceSession, r: Rule) {
  const irq = pickInterrupt(s);
  if (!irq) return null;
  const efd = s.eventfd();
  expectRc(s.setIrqs(VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD, irq.index, 0, 1, [efd.fd]), 0, r);
  return { ...irq, efd };
}

function resettable(s: DeviceSession): boolean {
  return (s.deviceInfo().info.flags & VFIO_DEVICE_FLAGS_RESET) !== 0;
}

function resetCases(subject: VariantDriverSubject): ConformanceCase[] {
  return [
    defineCase('VFIO_DEVICE_RESET succeeds exactly when VFIO_DEVICE_GET_INFO reports VFIO_DEVICE_FLAGS_RESET', () => {
      const s = open(subject);
      const can = resettable(s);
      expectRc(s.reset(), can ? 0 : 'EINVAL', rule(
        `VFIO_DEVICE_RESET on a device ${can ? 'with' : 'without'} VFIO_DEVICE_FLAGS_RESET`,
        'the flag mirrors reset_works, which is what the ioctl checks: EINVAL when no reset method works for the function',
      ));
    }),
    defineCase('VFIO_DEVICE_RESET resets the function with the reset hooks in order, keeping the user\'s config state', () => {
      const s = open(subject);
      const { fn } = s.dev;
      const events = recordResets(s.dev);
      const can = resettable(s);
      s.cfgWrite(PCI_COMMAND, 2, s.cfgRead(PCI_COMMAND, 2) | PCI_COMMAND_MEMORY);
      subject.deviceState?.perturb(s.dev);
      const before = fn.resetCount;
      const rc = s.reset();
      if (!can) {
        const r = rule('VFIO_DEVICE_RESET on a device without VFIO_DEVICE_FLAGS_RESET', 'no reset method: EINVAL, and nothing is reset');
        expectRc(rc, 'EINVAL', r);
        expectEqual(fn.resetCount, before, r, 'resets of the function');
        expectEqual(events, [], r, 'reset hooks that ran');
        return;
      }
      const r = rule(
        'VFIO_DEVICE_RESET',
        'pci_try_reset_function() resets the function once, with vfio-pci-core\'s hooks around it (beforeReset, reset with '
          + 'the method used, afterReset), saving and restoring the config state',
      );
      expectRc(rc, 0, r);
      expectEqual(fn.resetCount, before + 1, r, 'resets of the function');
      expectEqual(events.map((e) => e.replace(/^reset:ioctl:.+$/, 'reset:ioctl:<method>')), ['beforeReset:ioctl', 'reset:ioctl:<method>', 'afterReset:ioctl'], r, 'reset hooks that ran');
      expectThat(!events[1]!.endsWith(':null'), r, 'the reset hook ran with no reset method');
      expectEqual(s.cfgRead(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY, r, 'memory enable the user had set');
      subject.deviceState?.assertReset(s.dev);
    }),
    defineCase('an interrupt wired with VFIO_DEVICE_SET_IRQS still reaches its eventfd after VFIO_DEVICE_RESET', () => {
      const s = open(subject);
      const r = rule(
        'VFIO_DEVICE_SET_IRQS ACTION_TRIGGER | DATA_EVENTFD for the device\'s interrupt',
        'a trigger eventfd is accepted for a count the interrupt index reports',
      );
      const irq = wireInterrupt(s, r);
      if (!irq) {
        const none = rule('VFIO_DEVICE_GET_IRQ_INFO of a device without an interrupt the suite can raise', 'INTx, MSI and MSI-X all report count 0');
        for (const index of [VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX]) expectEqual(s.irqInfo(index).info.count, 0, none, `count of index ${index}`);
        return;
      }
      if (resettable(s)) setupOk(s.reset(), 'VFIO_DEVICE_RESET');
      irq.raise();
      expectEqual(irq.efd.signals(), 1n, rule(
        `${irq.name} raised by the device after VFIO_DEVICE_RESET`,
        'the reset ioctl neither tears down the interrupt setup nor loses the device\'s interrupt state: '
          + 'pci_try_reset_function() restores the saved config (MSI/MSI-X included) and SET_IRQS state is untouched',
      ), 'eventfd signals');
    }),
    defineCase('the last close tears the interrupts down and resets a resettable function', () => {
      const s = open(subject);
      const { fn } = s.dev;
      const irq = wireInterrupt(s, rule('VFIO_DEVICE_SET_IRQS ACTION_TRIGGER | DATA_EVENTFD', 'a trigger eventfd is accepted for a count the index reports'));
      const can = resettable(s);
      const before = fn.resetCount;
      const r = rule(
        'close() of the only fd of the device',
        'vfio_pci_core_close_device() disables the device: interrupts are torn down (SET_IRQS TRIGGER with count 0) and, '
          + 'when reset works, the function is reset (__pci_reset_function_locked, without the reset_prepare/reset_done handlers)',
      );
      expectRc(s.dev.user.proc.close(s.fd), 0, r);
      if (irq) {
        irq.raise();
        expectEqual(irq.efd.signals(), 0n, r, `signals on the ${irq.name} eventfd after the close`);
      }
      expectEqual(fn.resetCount, can ? before + 1 : before, r, 'resets of the function at close');
    }),
  ];
}

// ------------------------------------------------------------ migration

function featureMigration(s: DeviceSession) {
  const { rc, payload } = s.feature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, vfio_device_feature_migration.encodeNew());
  return { rc, flags: vfio_device_feature_migration.decode(payload).flags };
}

/** SET to `state`, which must succeed; a data fd it returns is closed. */
function drive(s: DeviceSession, state: number, why: string): void {
  const { rc, dataFd } = s.setMigState(state);
  expectRc(rc, 0, rule(`VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET ${migStateName(state)} (${why})`, 'every state the flags allow is reachable from RUNNING, and RUNNING from every state'));
  if (dataFd >= 0) s.dev.user.proc.close(dataFd);
}

function migrationCases(subject: VariantDriverSubject): ConformanceCase[] {
  const migration = subject.migration;
  if (!migration) {
    return [defineCase('a driver without migration answers VFIO_DEVICE_FEATURE_MIGRATION with ENOTTY', () => {
      const s = open(subject);
      const r = rule('VFIO_DEVICE_FEATURE_MIGRATION GET on a device whose driver has no migration ops', 'the vfio core answers ENOTTY when the device has no mig_ops');
      expectRc(featureMigration(s).rc, 'ENOTTY', r);
      expectRc(s.feature(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE).rc, 'ENOTTY', r);
    })];
  }
  const { flags } = migration;
  const states = migStates(flags);
  const arcsOf = (dev: BoundDevice) => migration.arcs?.(dev).map(([from, to]) => `${migStateName(from)}>${migStateName(to)}`) ?? null;

  return [
    defineCase('VFIO_DEVICE_FEATURE_MIGRATION reports the driver\'s flags and the device starts in RUNNING', () => {
      const s = open(subject);
      const r = rule('VFIO_DEVICE_FEATURE_MIGRATION GET', 'the vfio core reports the VFIO_MIGRATION_* flags the driver registered with its mig_ops');
      const got = featureMigration(s);
      expectRc(got.rc, 0, r);
      expectEqual(got.flags, BigInt(flags), r, 'migration flags');
      expectRc(s.feature(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE).rc, 0, rule(
        'VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE PROBE of GET and SET', 'a migration device supports both',
      ));
      const state = s.migState();
      const r2 = rule('VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE GET right after open', 'a device is RUNNING when opened');
      expectRc(state.rc, 0, r2);
      expectEqual(migStateName(state.state), 'RUNNING', r2, 'device_state');
    }),
    defineCase('every transition the flags allow reaches its target along the kernel\'s path, with a data fd exactly after a stream-opening arc', () => {
      const s = open(subject);
      for (const from of states) {
        for (const to of states) {
          const path = migPath(flags, from, to);
          if (!path) continue;
          drive(s, VFIO_DEVICE_STATE_RUNNING, 'back to the start');
          drive(s, from, `to the start state of ${migStateName(from)} -> ${migStateName(to)}`);
          const arcsBefore = arcsOf(s.dev)?.length ?? 0;
          const last = path.length === 0 ? null : [path.length === 1 ? from : path[path.length - 2]!, to] as const;
          const fd = last !== null && opensDataFd(last[0], last[1]);
          const steps = [from, ...path].map(migStateName).join(' -> ');
          const r = rule(
            `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET ${migStateName(to)} from ${migStateName(from)}`,
            `the driver walks vfio_mig_get_next_state()'s path ${steps}; data_fd is a new fd when the last arc starts a `
              + 'data transfer session (RUNNING -> PRE_COPY, RUNNING_P2P -> PRE_COPY_P2P, STOP -> STOP_COPY, STOP -> RESUMING), else -1',
          );
          const res = s.setMigState(to);
          expectRc(res.rc, 0, r);
          expectEqual(migStateName(s.migState().state), migStateName(to), r, 'device_state after the SET');
          if (fd) {
            expectThat(res.dataFd >= 0, r, `data_fd is ${res.dataFd}`);
            expectRc(s.dev.user.proc.close(res.dataFd), 0, rule(`close() of the data_fd of ${migStateName(from)} -> ${migStateName(to)}`, 'the data_fd is an open fd of the caller'));
          } else {
            expectEqual(res.dataFd, -1, r, 'data_fd');
          }
          const arcs = arcsOf(s.dev);
          if (arcs) {
            const expected = path.map((state, i) => `${migStateName(i === 0 ? from : path[i - 1]!)}>${migStateName(state)}`);
            expectEqual(arcs.slice(arcsBefore), expected, r, 'arcs the driver executed');
          }
        }
      }
    }),
    defineCase('a target the flags do not allow, outside the FSM or without a path is EINVAL, with data_fd -1 and the state unchanged', () => {
      const s = open(subject);
      for (const from of states) {
        drive(s, VFIO_DEVICE_STATE_RUNNING, 'back to the start');
        drive(s, from, `to ${migStateName(from)}`);
        const refused = [...migNonStates(flags), ...states.filter((to) => migPath(flags, from, to) === null)];
        for (const to of refused) {
          const arcsBefore = arcsOf(s.dev);
          const r = rule(
            `VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET ${migStateName(to)} from ${migStateName(from)}`,
            'vfio_mig_get_next_state() refuses a state the flags do not allow, ERROR, a value past the enum and an arc with no path '
              + '(STOP_COPY -> PRE_COPY*) with EINVAL before any arc runs; the core still writes data_fd = -1 back',
          );
          const res = s.setMigState(to);
          expectRc(res.rc, 'EINVAL', r);
          expectEqual(res.dataFd, -1, r, 'data_fd');
          expectEqual(migStateName(s.migState().state), migStateName(from), r, 'device_state after the refused SET');
          if (arcsBefore) expectEqual(arcsOf(s.dev), arcsBefore, r, 'arcs the driver executed');
        }
      }
    }),
    defineCase('VFIO_DEVICE_RESET returns the migration state to RUNNING', () => {
      const s = open(subject);
      drive(s, VFIO_DEVICE_STATE_STOP, 'away from RUNNING');
      if (!resettable(s)) {
        const r = rule('VFIO_DEVICE_RESET of a migration device without VFIO_DEVICE_FLAGS_RESET', 'EINVAL, and the migration state stays');
        expectRc(s.reset(), 'EINVAL', r);
        expectEqual(migStateName(s.migState().state), 'STOP', r, 'device_state');
        return;
      }
      const r = rule('VFIO_DEVICE_RESET in STOP', 'the uAPI makes VFIO_DEVICE_RESET return device_state to RUNNING (the way out of ERROR); drivers do it from their reset hook');
      expectRc(s.reset(), 0, r);
      expectEqual(migStateName(s.migState().state), 'RUNNING', r, 'device_state');
    }),
  ];
}

/**
 * The variant driver conformance suite for `subject`: one case per rule,
 * each on a fresh host. Register them with any test runner:
 *
 *   for (const c of variantDriverConformance(subject)) it(c.name, c.run);
 */
export function variantDriverConformance(subject: VariantDriverSubject): ConformanceCase[] {
  return [...configCases(subject), ...regionCases(subject), ...resetCases(subject), ...migrationCases(subject)];
}
