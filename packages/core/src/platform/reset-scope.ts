import { SimError } from '../errors/index.js';
import type { PciFunction } from './pci-function.js';
import { functionsBelow, secondaryBusReset, walkBus, type PciBus, type PciSlot } from './topology.js';

/**
 * Linux's function reset methods (drivers/pci/pci.c pci_reset_fn_methods),
 * in the order pci_reset_function() tries them. `cxl_bus` follows `bus` in
 * the kernel; it needs a CXL port, which the platform does not model.
 */
export type ResetMethod = 'device_specific' | 'acpi' | 'flr' | 'af_flr' | 'pm' | 'bus';

export const PCI_RESET_METHODS: readonly ResetMethod[] = ['device_specific', 'acpi', 'flr', 'af_flr', 'pm', 'bus'];

/** How the `bus` method would reset a function: its hot-plug slot, or the bridge above its bus. */
export type BusResetRoute = { kind: 'slot'; slot: PciSlot } | { kind: 'bus'; bridge: PciFunction };

/**
 * pci_dev_reset_slot_function(): a slot reset can stand in for a function
 * reset only for a single-function non-bridge device in a hot-plug slot.
 */
function slotFunctionReset(fn: PciFunction): PciSlot | null {
  if (fn.multifunction || fn.subordinate || !fn.slot || !fn.slot.hotplug) return null;
  return fn.slot;
}

/**
 * pci_parent_bus_reset(): a secondary bus reset of the bridge above, only
 * when the function is alone on a non-root bus and is not itself a bridge.
 */
function parentBusReset(fn: PciFunction): PciFunction | null {
  const bus = fn.bus;
  if (bus.isRoot || fn.subordinate || !bus.self) return null;
  if (bus.devices.some((other) => other !== fn)) return null;
  return bus.self;
}

/** pci_reset_bus_function(): the slot route first, then the parent bus. */
export function busResetRoute(fn: PciFunction): BusResetRoute | null {
  const slot = slotFunctionReset(fn);
  if (slot) return { kind: 'slot', slot };
  const bridge = parentBusReset(fn);
  return bridge ? { kind: 'bus', bridge } : null;
}

/** Whether `method` would work for `fn` now (the kernel's PCI_RESET_PROBE). */
export function probeResetMethod(fn: PciFunction, method: ResetMethod): boolean {
  switch (method) {
    case 'device_specific':
      return fn.platformResets.deviceSpecific;
    case 'acpi':
      return fn.platformResets.acpi;
    case 'flr':
      return fn.flrCapable;
    case 'af_flr':
      return fn.afFlrCapable;
    case 'pm':
      return fn.pmCap !== 0 && !fn.noSoftReset;
    case 'bus':
      return busResetRoute(fn) !== null;
  }
}

/**
 * The reset methods available to `fn`, in the kernel's order: what
 * /sys/bus/pci/devices/.../reset_method would list. Evaluated now; the
 * kernel probes once at enumeration, so a later change (VFs appearing on
 * the PF's bus) shows up here but makes the kernel's `bus` attempt fail
 * and fall through.
 */
export function resetMethods(fn: PciFunction): ResetMethod[] {
  return PCI_RESET_METHODS.filter((method) => probeResetMethod(fn, method));
}

/** The functions a reset by `method` would reach, or null when it is not available. */
export function resetMethodScope(fn: PciFunction, method: ResetMethod): PciFunction[] | null {
  if (!probeResetMethod(fn, method)) return null;
  if (method !== 'bus') return [fn];
  const route = busResetRoute(fn)!;
  return functionsBelow(route.kind === 'slot' ? route.slot.port : route.bridge);
}

/**
 * Performs `method` on `fn` as the kernel's reset function for it does.
 * Throws NO_DEVICE when the method is not available for the function now.
 */
export function performResetMethod(fn: PciFunction, method: ResetMethod): void {
  if (!probeResetMethod(fn, method)) throw new SimError('NO_DEVICE', `${fn.name} cannot reset by ${method}`);
  switch (method) {
    case 'device_specific':
      return fn.deviceSpecificReset();
    case 'acpi':
      return fn.acpiReset();
    case 'flr':
      return fn.flr();
    case 'af_flr':
      return fn.afFlr();
    case 'pm':
      return fn.pmReset();
    case 'bus': {
      const route = busResetRoute(fn)!;
      if (route.kind === 'slot') route.slot.reset();
      else secondaryBusReset(route.bridge);
    }
  }
}

/**
 * pci_reset_function(): the first available method in kernel order. Returns
 * the method used; throws NO_DEVICE when none is available (the kernel's
 * ENOTTY, which vfio reports as no reset support).
 */
export function pciResetFunction(fn: PciFunction): ResetMethod {
  const method = resetMethods(fn)[0];
  if (!method) throw new SimError('NO_DEVICE', `${fn.name} has no reset method`);
  performResetMethod(fn, method);
  return method;
}

/** What a vfio hot reset of a function would do and whom it would touch. */
export interface HotResetScope {
  readonly kind: 'slot' | 'bus';
  /** The slot reset, for `slot`. */
  readonly slot: PciSlot | null;
  /** The bus whose hierarchy is walked. */
  readonly bus: PciBus;
  /** Functions affected, in pci_walk_bus order: every one needs to be owned by the caller. */
  readonly functions: readonly PciFunction[];
}

/**
 * pci_probe_reset_slot(pdev->slot), else pci_probe_reset_bus(pdev->bus), as
 * vfio-pci's hot reset decides; null when neither is possible, which vfio
 * answers with ENODEV. A slot reset needs a hot-plug slot; a bus reset needs
 * a bridge above the bus (not a root bus, not a virtual VF bus). Quirks that
 * forbid bus resets are not modelled, so every bus below a bridge resets.
 *
 * The affected set is vfio_pci_for_each_slot_or_bus(): pci_walk_bus() of
 * the function's bus, keeping for a slot only what sits in or below it.
 */
export function hotResetScope(fn: PciFunction): HotResetScope | null {
  const slot = fn.slot;
  if (slot && slot.hotplug) {
    const functions = walkBus(fn.bus).filter((other) => belowSlot(other, slot));
    return { kind: 'slot', slot, bus: fn.bus, functions };
  }
  if (!fn.bus.self) return null;
  return { kind: 'bus', slot: null, bus: fn.bus, functions: walkBus(fn.bus) };
}

/**
 * Performs the hot reset hotResetScope() describes (pci_reset_bus(): slot
 * reset, else secondary bus reset of the bridge above). Throws NO_DEVICE
 * when neither is possible.
 */
export function pciResetBus(fn: PciFunction): HotResetScope {
  const scope = hotResetScope(fn);
  if (!scope) throw new SimError('NO_DEVICE', `${fn.name} can be reset neither by slot nor by bus`);
  if (scope.kind === 'slot') scope.slot!.reset();
  else secondaryBusReset(scope.bus.self!);
  return scope;
}

/** vfio_pci_dev_below_slot(): climb to the slot's bus and compare slots there. */
function belowSlot(fn: PciFunction, slot: PciSlot): boolean {
  for (let dev: PciFunction | null = fn; dev; dev = dev.bus.self) {
    if (dev.bus === slot.bus) return dev.slot === slot;
  }
  return false;
}
