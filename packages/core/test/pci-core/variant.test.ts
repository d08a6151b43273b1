import { describe, expect, it } from 'vitest';
import {
  Errno,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_EXT_CAP_ID_PASID,
  SimError,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_RESET,
  VFIO_PCI_NUM_REGIONS,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  VFIO_REGION_TYPE_PCI_VENDOR_TYPE,
  pciExtCapId,
  pciExtCapNext,
  vfio_device_feature,
  vfio_region_info,
  vfio_region_info_cap_sparse_mmap,
  vfio_region_info_cap_type,
  vfio_region_sparse_mmap_area,
  vfioPciIndexToOffset,
  VfioPciCoreDevice,
  type VfioPciVendorInfo,
  vfioPciCoreOps,
} from '@vfiosim/core';
import {
  ACME_CONFIG_REGISTER,
  ACME_FEATURE,
  ACME_IOCTL_RESETS,
  ACME_PASID_OFFSET,
  ACME_REGION_SIZE,
  ACME_REGION_SUBTYPE,
  AcmeDevice,
  acmeOps,
  acmePlugin,
  VARIANT_DRIVER,
} from './fixtures/variant-driver.js';
import { Rig } from './helpers.js';

const REGION = VFIO_PCI_NUM_REGIONS;

function acmeRig(): Rig & { acme: AcmeDevice } {
  const rig = new Rig({ deviceId: 0x10f0, extendedCapabilities: { aer: true } }, { plugins: [acmePlugin()], driver: VARIANT_DRIVER });
  return Object.assign(rig, { acme: rig.vdev as AcmeDevice });
}

function feature(rig: Rig, flags: number, payload: Uint8Array): { rc: number; data: Uint8Array } {
  const bytes = new Uint8Array(8 + payload.length);
  vfio_device_feature.encode({ argsz: bytes.length, flags }, bytes);
  bytes.set(payload, 8);
  rig.proc.mem.write(rig.scratch, bytes);
  const rc = rig.proc.ioctl(rig.fd, VFIO_DEVICE_FEATURE, rig.scratch);
  return { rc, data: (rig.proc.mem.read(rig.scratch + 8n, payload.length) as Uint8Array).slice() };
}

describe('a variant driver built on vfio-pci-core', () => {
  it('opens through its own driver and runs its open hook after registering its region', () => {
    const rig = acmeRig();
    expect(rig.acme).toBeInstanceOf(AcmeDevice);
    expect(rig.acme.ops).toBe(acmeOps);
    expect(rig.acme.events).toContain('open');
    expect(rig.deviceInfo().info.num_regions).toBe(VFIO_PCI_NUM_REGIONS + 1);
  });

  it('describes its region with the type capability first and its own sparse mmap capability after', () => {
    const rig = acmeRig();
    const capsSize = vfio_region_info_cap_type.size + vfio_region_info_cap_sparse_mmap.size + vfio_region_sparse_mmap_area.size;
    const short = rig.regionInfo(REGION);
    expect(short.info.argsz).toBe(vfio_region_info.size + capsSize);
    const { rc, info, bytes } = rig.regionInfo(REGION, vfio_region_info.size + capsSize);
    expect(rc).toBe(0);
    expect(info).toMatchObject({
      index: REGION,
      size: ACME_REGION_SIZE,
      offset: vfioPciIndexToOffset(REGION),
      flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS,
      cap_offset: vfio_region_info.size,
    });
    const type = vfio_region_info_cap_type.decode(bytes, vfio_region_info.size);
    expect(type).toEqual({
      header: { id: VFIO_REGION_INFO_CAP_TYPE, version: 1, next: vfio_region_info.size + vfio_region_info_cap_type.size },
      type: (VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1af4) >>> 0,
      subtype: ACME_REGION_SUBTYPE,
    });
    const sparseAt = type.header.next;
    const sparse = vfio_region_info_cap_sparse_mmap.decode(bytes, sparseAt);
    expect(sparse).toEqual({ header: { id: VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1, next: 0 }, nr_areas: 1, reserved: 0 });
    expect(vfio_region_sparse_mmap_area.decode(bytes, sparseAt + vfio_region_info_cap_sparse_mmap.size)).toEqual({ offset: 0x1000n, size: 0x1000n });
  });

  it('serves its region through pread, pwrite and mmap', () => {
    const rig = acmeRig();
    const at = vfioPciIndexToOffset(REGION);
    expect(rig.proc.pwrite(rig.fd, new Uint8Array([9, 8, 7]), at + 0x1000n)).toBe(3);
    const back = new Uint8Array(3);
    expect(rig.proc.pread(rig.fd, back, at + 0x1000n)).toBe(3);
    expect([...back]).toEqual([9, 8, 7]);
    const va = rig.proc.mmap(0x1000, { fd: rig.fd, offset: at + 0x1000n });
    expect(rig.proc.mem.readU32(va)).toBe(0x00070809);
    expect(rig.proc.pread(rig.fd, back, at + ACME_REGION_SIZE)).toBe(-Errno.EINVAL);
  });

  it('emulates a config register through the write intercept and the read waterfall', () => {
    const rig = acmeRig();
    expect(rig.cfgWrite(ACME_CONFIG_REGISTER, 4, 0x12345678)).toBe(4);
    expect(rig.acme.register).toBe(0x12345678);
    expect(rig.fn.config.read(ACME_CONFIG_REGISTER, 4)).toBe(0);
    expect(rig.cfgRead(ACME_CONFIG_REGISTER, 4)).toBe(0x12345678);
    expect(rig.cfgWrite(ACME_CONFIG_REGISTER + 2, 2, 0xabcd)).toBe(2);
    expect(rig.cfgRead(ACME_CONFIG_REGISTER + 2, 2)).toBe(0xabcd);
    expect(rig.cfgRead(ACME_CONFIG_REGISTER, 4)).toBe(0xabcd5678);
    // Other registers keep the default virtualization.
    expect(rig.cfgRead(0, 2)).toBe(0x1af4);
  });

  it('falls through to the default virtualization when a config write tap does not claim the write', () => {
    const rig = acmeRig();
    const seen: Array<[number, number, number]> = [];
    rig.acme.hooks.configWrite.for(PCI_COMMAND).tap({ name: 'observer' }, ({ offset, size, value }) => {
      seen.push([offset, size, value]);
      return undefined;
    });
    expect(rig.cfgWrite(PCI_COMMAND, 2, 0)).toBe(2);
    expect(rig.fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(0);
    expect(rig.cfgWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY)).toBe(2);
    expect(rig.fn.config.read(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(PCI_COMMAND_MEMORY);
    expect(seen).toEqual([[PCI_COMMAND, 2, 0], [PCI_COMMAND, 2, PCI_COMMAND_MEMORY]]);
  });

  it('answers its own device feature and leaves unknown ones to vfio-pci-core', () => {
    const rig = acmeRig();
    const knob = new Uint8Array([0x44, 0x33, 0x22, 0x11]);
    expect(feature(rig, VFIO_DEVICE_FEATURE_SET | ACME_FEATURE, knob).rc).toBe(0);
    expect(rig.acme.knob).toBe(0x11223344);
    expect([...feature(rig, VFIO_DEVICE_FEATURE_GET | ACME_FEATURE, new Uint8Array(4)).data]).toEqual([...knob]);
    expect(feature(rig, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | ACME_FEATURE, new Uint8Array(0)).rc).toBe(0);
    expect(feature(rig, VFIO_DEVICE_FEATURE_SET | ACME_FEATURE, new Uint8Array(2)).rc).toBe(-Errno.EINVAL);
    expect(feature(rig, VFIO_DEVICE_FEATURE_GET | (ACME_FEATURE + 1), new Uint8Array(4)).rc).toBe(-Errno.ENOTTY);
  });

  it('answers its own ioctl', () => {
    const rig = acmeRig();
    expect(rig.proc.ioctl(rig.fd, ACME_IOCTL_RESETS, 0n)).toBe(1);
  });

  it('resets its own state with the function, between the before and after hooks', () => {
    const rig = acmeRig();
    rig.acme.state = 'STOP';
    rig.proc.pwrite(rig.fd, new Uint8Array([1]), vfioPciIndexToOffset(REGION));
    rig.acme.events.length = 0;
    expect(rig.proc.ioctl(rig.fd, VFIO_DEVICE_RESET, 0n)).toBe(0);
    expect(rig.acme.state).toBe('RUNNING');
    expect(rig.acme.region[0]).toBe(0);
    expect(rig.acme.events).toEqual(['before ioctl', 'reset ioctl flr', 'after ioctl']);
    expect(rig.proc.ioctl(rig.fd, ACME_IOCTL_RESETS, 0n)).toBe(2);
  });

  it('shows its virtual PASID capability at the end of the extended list; the function never sees it', () => {
    const rig = acmeRig();
    const aer = rig.cfgRead(0x100, 4);
    expect(pciExtCapNext(aer)).toBe(ACME_PASID_OFFSET);
    const header = rig.cfgRead(ACME_PASID_OFFSET, 4);
    expect(pciExtCapId(header)).toBe(PCI_EXT_CAP_ID_PASID);
    expect(pciExtCapNext(header)).toBe(0);
    expect(rig.cfgRead(ACME_PASID_OFFSET + 4, 2)).toBe(20 << 8);
    expect(rig.cfgWrite(ACME_PASID_OFFSET + 6, 2, 0xffff)).toBe(2);
    expect(rig.cfgRead(ACME_PASID_OFFSET + 6, 2)).toBe(0x7);
    expect(rig.cfgWrite(ACME_PASID_OFFSET, 4, 0)).toBe(4);
    expect(rig.cfgRead(ACME_PASID_OFFSET, 4)).toBe(header);
    expect(rig.fn.config.read(ACME_PASID_OFFSET, 4)).toBe(0);
    expect(rig.acme.ioPageFaultCapable).toBe(true);
  });

  it('drops its region and runs its close hook at the last close', () => {
    const rig = acmeRig();
    rig.acme.events.length = 0;
    expect(rig.proc.close(rig.fd)).toBe(0);
    expect(rig.acme.events).toEqual(['close', 'region released']);
    expect(rig.acme.regions).toHaveLength(0);
  });

  it('wraps a failing tap with the hook and plugin name, keeping its errno', () => {
    const rig = acmeRig();
    rig.acme.hooks.configWrite.for(0x40).tap({ name: 'fault-injector' }, () => {
      throw new SimError('IO_ERROR', 'injected');
    });
    expect(rig.cfgWrite(0x40, 4, 0)).toBe(-Errno.EIO);
    rig.acme.hooks.ioctl.for(0x3b99).tap({ name: 'buggy-plugin' }, () => {
      throw new TypeError('oops');
    });
    expect(rig.proc.ioctl(rig.fd, 0x3b99, 0n)).toBe(-Errno.EIO);
    let caught: unknown;
    try {
      rig.acme.hooks.ioctl.get(0x3b99)!.call({ vdev: rig.acme, proc: rig.proc, request: 0x3b99, argp: 0n });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(SimError);
    expect((caught as SimError).code).toBe('HOOK_TAP_FAILED');
    expect((caught as SimError).message).toContain('ioctl[0x3b99] (buggy-plugin): oops');
  });

  it('refuses vendor information that does not fit extended config space', () => {
    const bad: VfioPciVendorInfo = { virtualExtCapabilities: [{ id: PCI_EXT_CAP_ID_PASID, version: 1, offset: 0x80, body: new Uint8Array(4) }] };
    const rig = new Rig();
    expect(() => new VfioPciCoreDevice(rig.fn, vfioPciCoreOps, { vendorInfo: bad })).toThrow(/does not fit extended config space/);
  });

  it('fails the open when a virtual capability overlaps a real one', () => {
    const rig = new Rig();
    const overlapping = new VfioPciCoreDevice(rig.fn, vfioPciCoreOps, {
      vendorInfo: { virtualExtCapabilities: [{ id: PCI_EXT_CAP_ID_PASID, version: 1, offset: 0x100, body: new Uint8Array(4) }] },
    });
    expect(() => vfioPciCoreOps.openDevice!(overlapping)).toThrow(/overlaps config byte 0x100/);
    expect(overlapping.enabled).toBe(false);
  });
});
