import { describe, expect, it } from 'vitest';
import { SimError, type ResetContext } from '@vfiosim/core';
import { FN0, FN1, Vmm, makeHost, twoFunctionNic, twoFunctionNicNoFlr, type TestHost } from './harness.js';

function state(t: TestHost) {
  return [FN0, FN1].map((bdf) => ({ resets: t.fn(bdf).resetCount, last: t.fn(bdf).lastReset }));
}

describe('the dev_set reset when the last device of the set closes', () => {
  it('bus-resets both functions of a device without FLR once both are closed, and not before', () => {
    const t = makeHost(twoFunctionNicNoFlr);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0, FN1]);
    expect(t.vdev(FN0).resetWorks).toBe(false);
    const before = state(t);

    vmm.ok(vmm.proc.close(devices[0]!), 'close FN0');
    expect(state(t)).toEqual(before);
    expect(t.vdev(FN0).needsReset).toBe(true);

    vmm.ok(vmm.proc.close(devices[1]!), 'close FN1');
    expect(state(t)).toEqual(before.map((s) => ({ resets: s.resets + 1, last: 'bus' })));
    expect([t.vdev(FN0).needsReset, t.vdev(FN1).needsReset]).toEqual([false, false]);
  });

  it('waits for the other VMM: the set is reset when its last open device closes, whoever holds it', () => {
    const t = makeHost(twoFunctionNicNoFlr);
    const a = new Vmm(t.host);
    const b = new Vmm(t.host);
    const devA = a.openCdev(t, FN0, a.openIommufd());
    const devB = b.openCdev(t, FN1, b.openIommufd());
    const before = state(t);
    a.ok(a.proc.close(devA.fd), 'close FN0');
    expect(state(t)).toEqual(before);
    b.ok(b.proc.close(devB.fd), 'close FN1');
    expect(state(t).map((s) => s.last)).toEqual(['bus', 'bus']);
  });

  it('resets a sibling that was never opened along with the device that closes', () => {
    const t = makeHost(twoFunctionNicNoFlr);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0]);
    const before = t.fn(FN1).resetCount;
    vmm.ok(vmm.proc.close(devices[0]!), 'close FN0');
    expect(t.fn(FN1).resetCount).toBe(before + 1);
    expect(t.fn(FN0).lastReset).toBe('bus');
  });

  it('does not reset when the bus holds a function bound to a host driver; the device stays marked', () => {
    const t = makeHost(twoFunctionNicNoFlr, { vfio: [FN0], host: [FN1] });
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0]);
    const before = state(t);
    vmm.ok(vmm.proc.close(devices[0]!), 'close FN0');
    expect(state(t)).toEqual(before);
    expect(t.vdev(FN0).needsReset).toBe(true);
  });

  it('does no bus reset for functions whose own FLR cleaned them at close', () => {
    const t = makeHost(twoFunctionNic);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0, FN1]);
    for (const fd of devices) vmm.ok(vmm.proc.close(fd), 'close');
    expect(state(t).map((s) => s.last)).toEqual(['flr', 'flr']);
    expect([t.vdev(FN0).needsReset, t.vdev(FN1).needsReset]).toEqual([false, false]);
  });

  it('runs the reset hooks of every device with cause "close"', () => {
    const t = makeHost(twoFunctionNicNoFlr);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0]);
    const seen: string[] = [];
    for (const bdf of [FN0, FN1]) {
      t.vdev(bdf).hooks.reset.tap({ name: 'test' }, (ctx: ResetContext) => seen.push(`${ctx.vdev.name} ${ctx.cause} ${ctx.method}`));
    }
    vmm.ok(vmm.proc.close(devices[0]!), 'close FN0');
    expect(seen).toEqual([`${FN0} close bus`, `${FN1} close bus`]);
  });

  it('completes the close when a variant driver\'s reset hook throws, logging it and leaving the devices marked', () => {
    const t = makeHost(twoFunctionNicNoFlr);
    const vmm = new Vmm(t.host);
    const { devices } = vmm.openGroups(t, [FN0]);
    t.vdev(FN1).hooks.reset.tap({ name: 'variant' }, () => {
      throw new SimError('IO_ERROR', 'device did not come back');
    });
    expect(vmm.proc.close(devices[0]!)).toBe(0);
    expect(t.vdev(FN0).needsReset).toBe(true);
    expect(t.host.vfio.log.messages.at(-1)?.text).toMatch(/dev_set reset on close failed: .*variant.*device did not come back/);
  });
});
