import { SimError } from '../errors/index.js';
import { defineBarRegisters, defineRomRegister, type BarSpec } from './bars.js';
import { acsCapability } from './capabilities/acs.js';
import { aerCapability } from './capabilities/aer.js';
import { afCapability } from './capabilities/af.js';
import { atsCapability } from './capabilities/ats.js';
import type { CapabilityBlueprint } from './capabilities/capability.js';
import { msiCapability } from './capabilities/msi.js';
import { msixCapability } from './capabilities/msix.js';
import { pasidCapability } from './capabilities/pasid.js';
import { pcieCapability } from './capabilities/pcie.js';
import { installCapabilities, planCapabilities } from './capabilities/placement.js';
import { pmCapability } from './capabilities/pm.js';
import { priCapability } from './capabilities/pri.js';
import { sriovCapability } from './capabilities/sriov.js';
import { ConfigSpace } from './config-space.js';
import type { ExtendedCapabilitySpecs, StandardCapabilitySpecs } from './function-spec.js';
import {
  PCI_BASE_ADDRESS_0,
  PCI_BRIDGE_CONTROL,
  PCI_BRIDGE_CTL_BUS_RESET,
  PCI_BRIDGE_CTL_FAST_BACK,
  PCI_BRIDGE_CTL_ISA,
  PCI_BRIDGE_CTL_MASTER_ABORT,
  PCI_BRIDGE_CTL_PARITY,
  PCI_BRIDGE_CTL_SERR,
  PCI_BRIDGE_CTL_VGA,
  PCI_BRIDGE_CTL_VGA_16BIT,
  PCI_CACHE_LINE_SIZE,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_CLASS_REVISION,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_PARITY,
  PCI_COMMAND_SERR,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_BRIDGE,
  PCI_HEADER_TYPE_MFD,
  PCI_HEADER_TYPE_NORMAL,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_IO_BASE,
  PCI_IO_LIMIT,
  PCI_IO_RANGE_MASK,
  PCI_LATENCY_TIMER,
  PCI_MEMORY_BASE,
  PCI_MEMORY_LIMIT,
  PCI_MEMORY_RANGE_MASK,
  PCI_PREF_BASE_UPPER32,
  PCI_PREF_LIMIT_UPPER32,
  PCI_PREF_MEMORY_BASE,
  PCI_PREF_MEMORY_LIMIT,
  PCI_PREF_RANGE_MASK,
  PCI_PREF_RANGE_TYPE_64,
  PCI_PRIMARY_BUS,
  PCI_ROM_ADDRESS,
  PCI_SEC_LATENCY_TIMER,
  PCI_SEC_STATUS,
  PCI_SECONDARY_BUS,
  PCI_STATUS,
  PCI_STATUS_DETECTED_PARITY,
  PCI_STATUS_FAST_BACK,
  PCI_STATUS_PARITY,
  PCI_STATUS_REC_MASTER_ABORT,
  PCI_STATUS_REC_TARGET_ABORT,
  PCI_STATUS_SIG_SYSTEM_ERROR,
  PCI_STATUS_SIG_TARGET_ABORT,
  PCI_SUBORDINATE_BUS,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from './pci-regs.js';

/** The error bits of Status and Secondary Status, all RW1C. */
const STATUS_RW1C =
  PCI_STATUS_PARITY |
  PCI_STATUS_SIG_TARGET_ABORT |
  PCI_STATUS_REC_TARGET_ABORT |
  PCI_STATUS_REC_MASTER_ABORT |
  PCI_STATUS_SIG_SYSTEM_ERROR |
  PCI_STATUS_DETECTED_PARITY;

/** DEVSEL medium timing and fast back-to-back capable: conventional PCI only. */
const CONVENTIONAL_STATUS = 0x0200 | PCI_STATUS_FAST_BACK;

/** The hardware description a config space is built from. */
export interface ConfigBlueprint {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly revision: number;
  readonly classCode: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  readonly interruptPin: number;
  readonly multifunction: boolean;
  readonly headerType: 0 | 1;
  readonly bars: readonly BarSpec[];
  readonly romSize: bigint | null;
  readonly capabilities: StandardCapabilitySpecs;
  readonly extendedCapabilities: ExtendedCapabilitySpecs;
  /**
   * A VF's header: Vendor and Device ID read 0xffff, BARs and ROM are
   * read-only 0 (VF BARs live in the PF's SR-IOV capability), and only Bus
   * Master is writable in Command (SR-IOV spec, VF configuration space).
   */
  readonly virtfn: boolean;
}

/** The capability blueprints of a function, in canonical order. */
export function capabilityBlueprints(caps: StandardCapabilitySpecs, ext: ExtendedCapabilitySpecs): CapabilityBlueprint[] {
  const list: CapabilityBlueprint[] = [];
  if (caps.pm) list.push(pmCapability(caps.pm));
  if (caps.msi) list.push(msiCapability(caps.msi));
  if (caps.pcie) list.push(pcieCapability(caps.pcie));
  if (caps.msix) list.push(msixCapability(caps.msix));
  if (caps.af) list.push(afCapability(caps.af));
  if (ext.aer) list.push(aerCapability(ext.aer));
  if (ext.acs) list.push(acsCapability(ext.acs));
  if (ext.ats) list.push(atsCapability(ext.ats));
  if (ext.pasid) list.push(pasidCapability(ext.pasid));
  if (ext.pri) list.push(priCapability(ext.pri));
  if (ext.sriov) list.push(sriovCapability(ext.sriov));
  return list;
}

/** Config space size: 4 KiB for a PCIe function, 256 bytes for conventional PCI. */
export function configSpaceSize(caps: StandardCapabilitySpecs): number {
  return caps.pcie ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE;
}

/** Builds a function's config space at its power-on state. */
export function buildConfigSpace(blueprint: ConfigBlueprint): ConfigSpace {
  const config = new ConfigSpace(configSpaceSize(blueprint.capabilities));
  const pcie = blueprint.capabilities.pcie !== undefined;
  const bridge = blueprint.headerType === PCI_HEADER_TYPE_BRIDGE;

  config.define(PCI_VENDOR_ID, 2, { value: blueprint.virtfn ? 0xffff : blueprint.vendorId });
  config.define(PCI_DEVICE_ID, 2, { value: blueprint.virtfn ? 0xffff : blueprint.deviceId });

  const hasIo = bridge || blueprint.bars.some((b) => b.kind === 'io');
  const hasMem = bridge || blueprint.bars.some((b) => b.kind !== 'io') || blueprint.romSize !== null;
  const commandWritable = blueprint.virtfn
    ? PCI_COMMAND_MASTER
    : (hasIo ? PCI_COMMAND_IO : 0) |
      (hasMem ? PCI_COMMAND_MEMORY : 0) |
      PCI_COMMAND_MASTER |
      PCI_COMMAND_PARITY |
      PCI_COMMAND_SERR |
      (blueprint.interruptPin ? PCI_COMMAND_INTX_DISABLE : 0);
  config.define(PCI_COMMAND, 2, { value: 0, writable: commandWritable });
  config.define(PCI_STATUS, 2, { value: pcie ? 0 : CONVENTIONAL_STATUS, rw1c: STATUS_RW1C });
  config.define(PCI_CLASS_REVISION, 4, { value: ((blueprint.classCode << 8) | blueprint.revision) >>> 0 });
  config.define(PCI_CACHE_LINE_SIZE, 1, { value: 0, writable: 0xff });
  // PCIe hard-wires the latency timers to 0; conventional PCI masters use them.
  config.define(PCI_LATENCY_TIMER, 1, { value: 0, writable: pcie ? 0 : 0xff });
  const headerType = (bridge ? PCI_HEADER_TYPE_BRIDGE : PCI_HEADER_TYPE_NORMAL) | (blueprint.multifunction ? PCI_HEADER_TYPE_MFD : 0);
  config.define(PCI_HEADER_TYPE, 1, { value: headerType });
  config.define(PCI_INTERRUPT_LINE, 1, { value: 0, writable: 0xff });
  config.define(PCI_INTERRUPT_PIN, 1, { value: blueprint.interruptPin });

  if (!blueprint.virtfn) defineBarRegisters(config, PCI_BASE_ADDRESS_0, blueprint.bars);

  if (bridge) {
    defineBridgeHeader(config, pcie);
  } else {
    config.define(PCI_SUBSYSTEM_VENDOR_ID, 2, { value: blueprint.subsystemVendorId });
    config.define(PCI_SUBSYSTEM_ID, 2, { value: blueprint.subsystemId });
    if (blueprint.romSize !== null && !blueprint.virtfn) defineRomRegister(config, PCI_ROM_ADDRESS, blueprint.romSize);
  }

  const blueprints = capabilityBlueprints(blueprint.capabilities, blueprint.extendedCapabilities);
  const planned = planCapabilities(blueprints, config.size);
  if ('problem' in planned) {
    throw new SimError('INVALID_ARGUMENT', `${blueprints[planned.problem.index].name}: ${planned.problem.message}`);
  }
  installCapabilities(config, blueprints, planned.plan);
  config.sealPowerOnState();
  return config;
}

/**
 * Type 1 header registers. Bus numbers and windows power on as 0: firmware
 * and the OS program them during enumeration, and a reset of the bridge
 * loses them again. The prefetchable window decodes 64-bit addresses and the
 * I/O window 16-bit ones.
 */
function defineBridgeHeader(config: ConfigSpace, pcie: boolean): void {
  config.define(PCI_PRIMARY_BUS, 1, { value: 0, writable: 0xff });
  config.define(PCI_SECONDARY_BUS, 1, { value: 0, writable: 0xff });
  config.define(PCI_SUBORDINATE_BUS, 1, { value: 0, writable: 0xff });
  config.define(PCI_SEC_LATENCY_TIMER, 1, { value: 0, writable: pcie ? 0 : 0xff });
  config.define(PCI_IO_BASE, 1, { value: 0, writable: PCI_IO_RANGE_MASK });
  config.define(PCI_IO_LIMIT, 1, { value: 0, writable: PCI_IO_RANGE_MASK });
  config.define(PCI_SEC_STATUS, 2, { value: pcie ? 0 : CONVENTIONAL_STATUS, rw1c: STATUS_RW1C });
  config.define(PCI_MEMORY_BASE, 2, { value: 0, writable: PCI_MEMORY_RANGE_MASK });
  config.define(PCI_MEMORY_LIMIT, 2, { value: 0, writable: PCI_MEMORY_RANGE_MASK });
  config.define(PCI_PREF_MEMORY_BASE, 2, { value: PCI_PREF_RANGE_TYPE_64, writable: PCI_PREF_RANGE_MASK });
  config.define(PCI_PREF_MEMORY_LIMIT, 2, { value: PCI_PREF_RANGE_TYPE_64, writable: PCI_PREF_RANGE_MASK });
  config.define(PCI_PREF_BASE_UPPER32, 4, { value: 0, writable: 0xffffffff });
  config.define(PCI_PREF_LIMIT_UPPER32, 4, { value: 0, writable: 0xffffffff });
  config.define(PCI_BRIDGE_CONTROL, 2, {
    value: 0,
    writable:
      PCI_BRIDGE_CTL_PARITY |
      PCI_BRIDGE_CTL_SERR |
      PCI_BRIDGE_CTL_ISA |
      PCI_BRIDGE_CTL_VGA |
      PCI_BRIDGE_CTL_VGA_16BIT |
      PCI_BRIDGE_CTL_BUS_RESET |
      // Master Abort Mode and Fast Back-to-Back are conventional-PCI features, RO 0 on PCIe.
      (pcie ? 0 : PCI_BRIDGE_CTL_MASTER_ABORT | PCI_BRIDGE_CTL_FAST_BACK),
  });
}
