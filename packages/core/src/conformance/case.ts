/*
 * One conformance case: a named check a driver package registers with its
 * own test runner. The kit never imports a runner, so a package wires it in
 * with one line per suite:
 *
 *   for (const c of iommuDriverConformance(subject)) it(c.name, c.run);
 *
 * `run` throws an AssertionError (node:assert) whose message names the rule
 * that was broken and the kernel behaviour it stands for.
 *
 * Public API: ConformanceCase
 */

export interface ConformanceCase {
  /** Behaviour the case checks, phrased as a test name. */
  readonly name: string;
  /** Runs the case on a fresh host; resolves when it holds, throws an AssertionError otherwise. */
  run(): void | Promise<void>;
}
