import type { VirtualClock } from './clock.js';

/** A wake function (wait_queue_entry.func): called with the wake key, e.g. an EPOLL* mask. */
export type WakeFunction = (key: number) => void;

type Entry =
  | { readonly kind: 'waiter'; readonly cond: () => boolean; readonly settle: (met: boolean) => void; readonly fail: (error: unknown) => void }
  | { readonly kind: 'callback'; readonly wake: WakeFunction };

/**
 * Where kernel work waits for a condition (wait_queue_head_t). Whoever
 * changes the state the condition reads calls wakeUp(); each waiter
 * re-checks its condition then, never by polling. Timeouts run on the
 * virtual clock.
 *
 * Besides sleeping waiters it carries wake functions, the way irqfd and
 * vfio's virqfd hook an eventfd: they run synchronously inside wakeUp.
 */
export class WaitQueue {
  readonly #clock: VirtualClock | undefined;
  #entries: Entry[] = [];

  /** The clock is needed only for waits with a timeout. */
  constructor(clock?: VirtualClock) {
    this.#clock = clock;
  }

  /** Sleeping waiters plus wake functions. */
  get length(): number {
    return this.#entries.length;
  }

  /**
   * wait_event_timeout: resolves true as soon as `cond` holds (at once if it
   * already does), or — with a timeout — false when the clock passes the
   * deadline and `cond` still does not hold. A throwing condition rejects.
   */
  waitEvent(cond: () => boolean, timeoutNs?: bigint): Promise<boolean> {
    if (cond()) return Promise.resolve(true);
    if (timeoutNs !== undefined && !this.#clock) throw new Error('WaitQueue.waitEvent with a timeout needs a clock');
    return new Promise<boolean>((resolve, reject) => {
      const timer = timeoutNs === undefined ? undefined : this.#clock!.after(timeoutNs, () => {
        this.#remove(entry);
        try {
          resolve(cond());
        } catch (error) {
          reject(error);
        }
      });
      const entry: Entry = {
        kind: 'waiter',
        cond,
        settle: (met) => {
          timer?.cancel();
          resolve(met);
        },
        fail: (error) => {
          timer?.cancel();
          reject(error);
        },
      };
      this.#entries.push(entry);
    });
  }

  /** add_wait_queue with a custom wake function; returns its removal. */
  addWakeFunction(wake: WakeFunction): () => void {
    const entry: Entry = { kind: 'callback', wake };
    this.#entries.push(entry);
    return () => this.#remove(entry);
  }

  /**
   * Runs every wake function with `key` and re-checks every waiter's
   * condition, in the order they were added; waiters whose condition now
   * holds are removed and resolved.
   */
  wakeUp(key = 0): void {
    for (const entry of [...this.#entries]) {
      // An earlier wake function may have removed a later entry.
      if (!this.#entries.includes(entry)) continue;
      if (entry.kind === 'callback') {
        entry.wake(key);
        continue;
      }
      let met: boolean;
      try {
        met = entry.cond();
      } catch (error) {
        this.#remove(entry);
        entry.fail(error);
        continue;
      }
      if (met) {
        this.#remove(entry);
        entry.settle(true);
      }
    }
  }

  #remove(entry: Entry): void {
    const at = this.#entries.indexOf(entry);
    if (at >= 0) this.#entries.splice(at, 1);
  }
}
