import { describe, expect, it } from 'vitest';
import {
  SimError,
  VfioPciCoreDevice,
  pciResetBusWithState,
  vfioPciAssignDevSet,
  vfioPciCoreOps,
  vfioPciDevSetId,
  vfioPciDevSetResettable,
} from '@vfiosim/core';
import { sriovPfTwoVfs } from '../fixtures/hosts.js';
import { FN0, FN1, makeHost, rootBusDevice, twoFunctionNic, twoFunctionNicInSlot } from './harness.js';

describe('dev_sets of vfio-pci devices', () => {
  it('puts the functions of a bus that only a bus reset reaches in one set keyed by the bus', () => {
    const t = makeHost(twoFunctionNic);
    const set = t.vdev(FN0).devSet!;
    expect(t.vdev(FN1).devSet).toBe(set);
    expect(set.setId).toBe(t.fn(FN0).bus);
    expect(set.devices).toEqual([t.vdev(FN0), t.vdev(FN1)]);
    expect(vfioPciDevSetResettable(set)).toBe(t.vdev(FN0));
  });

  it('keys the set by the slot when the slot can be reset', () => {
    const t = makeHost(twoFunctionNicInSlot);
    const set = t.vdev(FN1).devSet!;
    expect(set.setId).toBe(t.fn(FN1).slot);
    expect(t.vdev(FN0).devSet).toBe(set);
  });

  it('gives a function on the root bus a set of its own', () => {
    const t = makeHost(rootBusDevice, { vfio: ['0000:00:02.0'] });
    const vdev = t.vdev('0000:00:02.0');
    expect(vdev.devSet!.setId).toBe(vdev);
    expect(vfioPciDevSetResettable(vdev.devSet!)).toBeNull();
  });

  it('gives a VF a set of its own, so no bus reset is ever done on its behalf', () => {
    const t = makeHost(sriovPfTwoVfs, { vfio: ['0000:3b:00.1'] });
    const vf = t.vdev('0000:3b:00.1');
    expect(vf.devSet!.setId).toBe(vf);
    expect(vf.devSet!.devices).toEqual([vf]);
    expect(vfioPciDevSetResettable(vf.devSet!)).toBeNull();
  });

  it('leaves a set unresettable while a function of the bus is bound to a host driver', () => {
    const t = makeHost(twoFunctionNic, { vfio: [FN0], host: [FN1] });
    const set = t.vdev(FN0).devSet!;
    expect(set.devices).toEqual([t.vdev(FN0)]);
    expect(vfioPciDevSetResettable(set)).toBeNull();
  });

  it('keeps a set a variant driver chose before registering', () => {
    const t = makeHost(twoFunctionNic, { vfio: [] });
    const vdev = new VfioPciCoreDevice(t.fn(FN0), vfioPciCoreOps);
    const chosen = t.host.vfio.assignDeviceSet(vdev, 'variant-set');
    expect(vfioPciDevSetId(vdev)).toBe(t.fn(FN0).bus);
    expect(vfioPciAssignDevSet(t.host.vfio, vdev)).toBe(chosen);
    expect(chosen.devices).toEqual([vdev]);
  });

  it('refuses a bus reset of a root-bus function with ENOTTY, touching nothing', () => {
    const t = makeHost(rootBusDevice, { vfio: [] });
    const fn = t.fn('0000:00:02.0');
    const prepared: string[] = [];
    const call = () => pciResetBusWithState(fn, { resetPrepare: (f) => prepared.push(f.name), resetDone: () => {} });
    expect(call).toThrow(SimError);
    expect(() => call()).toThrow(expect.objectContaining({ errnoName: 'ENOTTY' }));
    expect(prepared).toEqual([]);
    expect(fn.resetCount).toBe(0);
  });
});
