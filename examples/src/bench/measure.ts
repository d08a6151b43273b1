import { Bench } from 'tinybench';

/**
 * One benchmark: `run` performs `batch` operations per call, so operations
 * far shorter than the timer's resolution are still measured well; the
 * figures are per operation.
 */
export interface BenchCase {
  readonly name: string;
  /** What one operation is, for the table ("8-byte DMA read"). */
  readonly unit: string;
  readonly batch: number;
  readonly run: () => void;
  /** The plain-JavaScript reference this figure is compared with (a reference case's name). */
  readonly reference?: string;
}

export interface Figure {
  readonly name: string;
  readonly unit: string;
  readonly opsPerSecond: number;
  /** Relative margin of error of the mean, in percent (95 % confidence). */
  readonly rme: number;
  readonly nsPerOp: number;
  readonly samples: number;
  readonly reference?: string;
}

export interface MeasureOptions {
  /** Milliseconds of sampling per case. */
  readonly time: number;
  readonly warmupTime: number;
}

/** Runs each case in its own tinybench task, sequentially, and returns per-operation figures. */
export function measure(cases: readonly BenchCase[], options: MeasureOptions): Figure[] {
  const bench = new Bench({ time: options.time, warmupTime: options.warmupTime, throws: true });
  for (const c of cases) bench.add(c.name, c.run);
  const tasks = bench.runSync();
  return cases.map((c, i) => {
    const result = tasks[i]!.result;
    if (result.state !== 'completed') throw new Error(`benchmark "${c.name}" did not complete: ${result.state}`);
    // From the mean latency (total time / calls): the mean of per-call rates would overweight fast outliers.
    const nsPerOp = (result.latency.mean * 1e6) / c.batch;
    return {
      name: c.name,
      unit: c.unit,
      opsPerSecond: 1e9 / nsPerOp,
      rme: result.latency.rme,
      nsPerOp,
      samples: result.latency.samplesCount,
      ...(c.reference && { reference: c.reference }),
    };
  });
}
