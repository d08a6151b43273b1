import { describe, expect, it } from 'vitest';
import { VirtualClock, WaitQueue } from '@vfiosim/core';

describe('VirtualClock', () => {
  it('fires timers only on advance, in due order, ties in the order they were set', () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    clock.setTimer(30n, () => fired.push('c'));
    clock.setTimer(10n, () => fired.push('a'));
    clock.setTimer(10n, () => fired.push('b'));
    clock.setTimer(31n, () => fired.push('late'));
    expect(fired).toEqual([]);
    clock.advance(30n);
    expect(fired).toEqual(['a', 'b', 'c']);
    expect(clock.now).toBe(30n);
    expect(clock.pendingTimers).toBe(1);
  });

  it('shows each callback its own due time as now, and runs timers set inside the window', () => {
    const clock = new VirtualClock();
    const seen: bigint[] = [];
    clock.setTimer(5n, () => {
      seen.push(clock.now);
      clock.after(3n, () => seen.push(clock.now));
      clock.after(100n, () => seen.push(clock.now));
    });
    clock.advance(10n);
    expect(seen).toEqual([5n, 8n]);
    expect(clock.now).toBe(10n);
  });

  it('runs a timer set in the past at the next advance, not inside setTimer', () => {
    const clock = new VirtualClock();
    clock.advance(50n);
    let ran = false;
    clock.setTimer(10n, () => {
      ran = true;
    });
    expect(ran).toBe(false);
    clock.advance(0n);
    expect(ran).toBe(true);
    expect(clock.now).toBe(50n);
  });

  it('cancels a pending timer once', () => {
    const clock = new VirtualClock();
    let ran = false;
    const timer = clock.setTimer(1n, () => {
      ran = true;
    });
    expect(timer.cancel()).toBe(true);
    expect(timer.cancel()).toBe(false);
    clock.advance(5n);
    expect(ran).toBe(false);
    expect(timer.pending).toBe(false);
  });

  it('stops at a throwing timer, keeping later ones pending', () => {
    const clock = new VirtualClock();
    let later = false;
    clock.setTimer(2n, () => {
      throw new Error('boom');
    });
    clock.setTimer(3n, () => {
      later = true;
    });
    expect(() => clock.advance(10n)).toThrow('boom');
    expect(clock.now).toBe(2n);
    expect(later).toBe(false);
    clock.advance(1n);
    expect(later).toBe(true);
  });

  it('rejects a negative advance and an advance from inside a timer', () => {
    const clock = new VirtualClock();
    expect(() => clock.advance(-1n)).toThrow(RangeError);
    clock.setTimer(1n, () => clock.advance(1n));
    expect(() => clock.advance(1n)).toThrow(/from a timer/);
  });

  it('resolves sleep only once the clock has advanced far enough', async () => {
    const clock = new VirtualClock();
    let woke = false;
    const sleeping = clock.sleep(100n).then(() => {
      woke = true;
    });
    clock.advance(99n);
    await Promise.resolve();
    expect(woke).toBe(false);
    clock.advanceTo(100n);
    await sleeping;
    expect(woke).toBe(true);
  });
});

describe('WaitQueue', () => {
  it('resolves at once when the condition already holds', async () => {
    await expect(new WaitQueue().waitEvent(() => true)).resolves.toBe(true);
  });

  it('re-checks the condition on each wake and resolves when it holds', async () => {
    const queue = new WaitQueue();
    let openCount = 2;
    let result: boolean | undefined;
    const waiting = queue.waitEvent(() => openCount === 0).then((met) => {
      result = met;
    });
    openCount--;
    queue.wakeUp();
    await Promise.resolve();
    expect(result).toBeUndefined();
    expect(queue.length).toBe(1);
    openCount--;
    queue.wakeUp();
    await waiting;
    expect(result).toBe(true);
    expect(queue.length).toBe(0);
  });

  it('does not notice a condition change until someone wakes the queue', async () => {
    const queue = new WaitQueue();
    let ready = false;
    let result: boolean | undefined;
    void queue.waitEvent(() => ready).then((met) => {
      result = met;
    });
    ready = true;
    await Promise.resolve();
    await Promise.resolve();
    expect(result).toBeUndefined();
    queue.wakeUp();
    await Promise.resolve();
    expect(result).toBe(true);
  });

  it('times out on the virtual clock, answering whether the condition holds then', async () => {
    const clock = new VirtualClock();
    const queue = new WaitQueue(clock);
    await expect(
      (async () => {
        const waiting = queue.waitEvent(() => false, 1000n);
        clock.advance(1000n);
        return waiting;
      })(),
    ).resolves.toBe(false);
    let flag = false;
    const late = queue.waitEvent(() => flag, 10n);
    flag = true;
    clock.advance(10n);
    await expect(late).resolves.toBe(true);
    expect(queue.length).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('cancels the timeout when woken in time', async () => {
    const clock = new VirtualClock();
    const queue = new WaitQueue(clock);
    let flag = false;
    const waiting = queue.waitEvent(() => flag, 1000n);
    flag = true;
    queue.wakeUp();
    await expect(waiting).resolves.toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('needs a clock for a timeout', () => {
    expect(() => new WaitQueue().waitEvent(() => false, 1n)).toThrow(/needs a clock/);
  });

  it('rejects a waiter whose condition throws', async () => {
    const queue = new WaitQueue();
    let armed = false;
    const waiting = queue.waitEvent(() => {
      if (armed) throw new Error('bad condition');
      return false;
    });
    armed = true;
    queue.wakeUp();
    await expect(waiting).rejects.toThrow('bad condition');
  });

  it('calls wake functions with the key, in the order added, until removed', () => {
    const queue = new WaitQueue();
    const calls: string[] = [];
    const removeA = queue.addWakeFunction((key) => calls.push(`a${key}`));
    queue.addWakeFunction((key) => {
      calls.push(`b${key}`);
      removeA();
    });
    queue.wakeUp(1);
    queue.wakeUp(4);
    expect(calls).toEqual(['a1', 'b1', 'b4']);
  });
});
