import type { Host, PciFunction } from '@vfiosim/core';
import type { Trace } from '../vmm/trace.js';
import type { Vmm } from '../vmm/vmm.js';

/** One fact the demo checked, and whether it held. */
export interface DemoCheck {
  readonly step: string;
  readonly what: string;
  readonly ok: boolean;
}

/** A device file the VMM opened through its cdev and bound to the iommufd. */
export interface OpenedDevice {
  readonly bdf: string;
  readonly fn: PciFunction;
  readonly fd: number;
  readonly devid: number;
}

/** What the steps share: the host, the VMM process, and what earlier steps set up. */
export interface DemoContext {
  readonly host: Host;
  readonly trace: Trace;
  readonly vmm: Vmm;
  readonly checks: DemoCheck[];
  /** The step now running, for the checks it records. */
  step: string;
  iommufd: number;
  ioasId: number;
  nvme: OpenedDevice | null;
  /** The eventfd wired to the NVMe's MSI-X vector 0. */
  msixEventfd: number;
}

/** Records a fact; a failed one is printed, so the trace says what went wrong. */
export function check(ctx: DemoContext, ok: boolean, what: string): boolean {
  ctx.checks.push({ step: ctx.step, what, ok });
  if (!ok) ctx.trace.note(`UNEXPECTED: ${what} did not hold`);
  return ok;
}

/** The NVMe opened by the device step; later steps need it. */
export function nvmeOf(ctx: DemoContext): OpenedDevice {
  if (!ctx.nvme) throw new Error('the NVMe is opened by the device step');
  return ctx.nvme;
}
