import { Trace } from '../vmm/trace.js';
import { Vmm } from '../vmm/vmm.js';
import type { DemoCheck, DemoContext } from './context.js';
import { dmaThroughIoas } from './dma.js';
import { createDemoHost } from './host.js';
import { hotReset } from './hot-reset.js';
import { wireInterrupts } from './interrupts.js';
import { nestedAndStale } from './nested.js';
import { openDevice } from './open-device.js';
import { deviceReset } from './reset.js';
import { showTopology } from './topology.js';

export interface DemoReport {
  /** Everything the demo printed. */
  readonly text: string;
  /** Every fact the demo checked along the way. */
  readonly checks: readonly DemoCheck[];
}

/** The steps, in the order a VMM meets them. */
const STEPS = [showTopology, openDevice, wireInterrupts, dmaThroughIoas, nestedAndStale, deviceReset, hotReset] as const;

/**
 * Builds the demo host and walks a VMM through device assignment, printing
 * a trace. `echo` sees each line as it is made. Deterministic: the same
 * text every run.
 */
export function runDemo(echo: ((line: string) => void) | null = null): DemoReport {
  const host = createDemoHost();
  const trace = new Trace(echo);
  const ctx: DemoContext = {
    host,
    trace,
    vmm: new Vmm(host, trace),
    checks: [],
    step: '',
    iommufd: -1,
    ioasId: 0,
    nvme: null,
    msixEventfd: -1,
  };
  for (const step of STEPS) step(ctx);

  const failed = ctx.checks.filter((c) => !c.ok);
  trace.section('Summary');
  trace.line(failed.length === 0
    ? `all ${ctx.checks.length} checks held`
    : `${failed.length} of ${ctx.checks.length} checks FAILED:\n${failed.map((c) => `  [${c.step}] ${c.what}`).join('\n')}`);
  return { text: trace.text, checks: ctx.checks };
}
