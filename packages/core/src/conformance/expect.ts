import { AssertionError } from 'node:assert';
import { inspect, isDeepStrictEqual } from 'node:util';
import { Errno, errnoName, type ErrnoName } from '../errors/index.js';

/*
 * The assertions of the conformance kit. Every failure is a node:assert
 * AssertionError whose message says what the case did, what came back, and
 * which kernel behaviour the answer had to match, so a driver author reading
 * a red test knows which rule of the kernel they broke without opening the
 * suite.
 *
 * Public API: Rule, rule(), formatRc(), expectRc(), expectEqual(),
 * expectThat(), setupOk()
 */

/** A kernel rule: what the case does, and what the kernel does about it. */
export interface Rule {
  readonly what: string;
  readonly kernel: string;
}

export function rule(what: string, kernel: string): Rule {
  return { what, kernel };
}

/** A system call's result as userspace reads it: "0", "3", "-EINVAL". */
export function formatRc(rc: number | bigint): string {
  const value = Number(rc);
  if (value >= 0) return String(value);
  return `-${errnoName(value) ?? String(-value)}`;
}

function show(value: unknown): string {
  return inspect(value, { depth: 4, breakLength: Infinity });
}

function report(r: Rule, detail: string, actual: unknown, expected: unknown): never {
  throw new AssertionError({
    message: `${r.what}: ${detail}\n  kernel rule: ${r.kernel}`,
    actual,
    expected,
    operator: 'strictEqual',
  });
}

/** The call returned `expected`: a count, or -errno given by name. */
export function expectRc(rc: number, expected: number | ErrnoName, r: Rule): void {
  const want = typeof expected === 'number' ? expected : -Errno[expected];
  if (rc !== want) report(r, `expected ${formatRc(want)}, got ${formatRc(rc)}`, formatRc(rc), formatRc(want));
}

/** `actual` deep-equals `expected`; `what` names the value in the message. */
export function expectEqual<T>(actual: T, expected: T, r: Rule, what: string): void {
  if (!isDeepStrictEqual(actual, expected)) report(r, `${what}: expected ${show(expected)}, got ${show(actual)}`, actual, expected);
}

export function expectThat(condition: boolean, r: Rule, detail: string): asserts condition {
  if (!condition) report(r, detail, false, true);
}

/**
 * A step the case needs before it can check anything (opening, binding,
 * allocating). Its failure is reported as such: the subject or the code
 * under test broke before the rule could be looked at.
 */
export function setupOk(rc: number | bigint, step: string): void {
  if (Number(rc) < 0) {
    throw new AssertionError({
      message: `setup failed: ${step} returned ${formatRc(rc)}; the case cannot check its rule`,
      actual: formatRc(rc),
      expected: '>= 0',
      operator: '>=',
    });
  }
}
