/** A pending callback on the virtual clock. */
export interface Timer {
  /** Virtual time (ns) the timer fires at. */
  readonly at: bigint;
  readonly pending: boolean;
  /** Stops the timer; false if it already fired or was cancelled. */
  cancel(): boolean;
}

interface Entry {
  readonly at: bigint;
  readonly seq: number;
  readonly callback: () => void;
  pending: boolean;
}

/**
 * The model's only notion of time, in nanoseconds. Nothing moves it but
 * advance(): timers fire only then, in order of their due time (ties in the
 * order they were set), each seeing `now` equal to its own due time. So a
 * run is the same every time, whatever the host's speed.
 */
export class VirtualClock {
  #now = 0n;
  #seq = 0;
  #timers: Entry[] = [];
  #advancing = false;

  get now(): bigint {
    return this.#now;
  }

  /** Timers set and not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /**
   * Runs `callback` when the clock reaches `atNs`. A time already past is
   * due at the next advance (even advance(0n)); nothing runs from inside
   * setTimer itself.
   */
  setTimer(atNs: bigint, callback: () => void): Timer {
    const entry: Entry = { at: atNs, seq: this.#seq++, callback, pending: true };
    let low = 0;
    let high = this.#timers.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#timers[mid].at <= atNs) low = mid + 1;
      else high = mid;
    }
    this.#timers.splice(low, 0, entry);
    const timers = (): Entry[] => this.#timers;
    return {
      at: atNs,
      get pending() {
        return entry.pending;
      },
      cancel() {
        if (!entry.pending) return false;
        entry.pending = false;
        const list = timers();
        list.splice(list.indexOf(entry), 1);
        return true;
      },
    };
  }

  /** setTimer relative to now. */
  after(delayNs: bigint, callback: () => void): Timer {
    return this.setTimer(this.#now + delayNs, callback);
  }

  /**
   * Moves time forward by `ns`, running every timer due on the way,
   * including timers those callbacks set within the window. A callback that
   * throws stops the advance at its due time, with later timers still
   * pending, and the error propagates.
   */
  advance(ns: bigint): void {
    if (ns < 0n) throw new RangeError(`cannot advance the clock by ${ns} ns`);
    if (this.#advancing) throw new Error('VirtualClock.advance called from a timer callback');
    const target = this.#now + ns;
    this.#advancing = true;
    try {
      while (this.#timers.length > 0 && this.#timers[0].at <= target) {
        const entry = this.#timers.shift()!;
        entry.pending = false;
        if (entry.at > this.#now) this.#now = entry.at;
        entry.callback();
      }
      this.#now = target;
    } finally {
      this.#advancing = false;
    }
  }

  /** Advances to an absolute time (no-op if it is not in the future). */
  advanceTo(atNs: bigint): void {
    if (atNs > this.#now) this.advance(atNs - this.#now);
  }

  /** Resolves once the clock has been advanced by `ns` from now. */
  sleep(ns: bigint): Promise<void> {
    return new Promise((resolve) => {
      this.setTimer(this.#now + ns, resolve);
    });
  }
}
