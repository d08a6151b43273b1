import { VFIO_PCI_CONFIG_REGION_INDEX, vfio_region_info, type Process, type VfioPciCoreDevice } from '@vfiosim/core';
import { ioctlStruct } from '../vmm/ioctl-struct.js';
import type { BenchCase } from './measure.js';
import { MAP_GET, blackhole } from './reference.js';
import { benchHost, bindCdev, endpointBdf, ok } from './rig.js';

export const CONFIG_NO_TAP = 'config read 4 B, configRead hook untapped';
export const CONFIG_TAP = 'config read 4 B, configRead hook tapped (identity)';
export const HOOK_GUARD = 'configRead.isUsed() guard alone';

const BATCH = 100;

export interface ConfigReader {
  readonly proc: Process;
  readonly vdev: VfioPciCoreDevice;
  /** pread of the 4-byte vendor/device id through the config region; the value read. */
  read(): number;
}

function configReader(proc: Process, fd: number, vdev: VfioPciCoreDevice): ConfigReader {
  const info = ioctlStruct(proc, fd, 'VFIO_DEVICE_GET_REGION_INFO', vfio_region_info, { index: VFIO_PCI_CONFIG_REGION_INDEX });
  ok(info.rc, 'VFIO_DEVICE_GET_REGION_INFO');
  const buf = new Uint8Array(4);
  const view = new DataView(buf.buffer);
  const offset = info.out.offset;
  return {
    proc,
    vdev,
    read: () => {
      ok(proc.pread(fd, buf, offset), 'pread');
      return view.getUint32(0, true);
    },
  };
}

/**
 * Two identical functions bound to vfio-pci and opened through their
 * cdevs: one whose configRead hook nobody taps, one with an identity tap
 * (what a variant driver that watches config reads costs).
 */
export function configReaders(): { plain: ConfigReader; tapped: ConfigReader } {
  const host = benchHost(2);
  const proc = host.spawn();
  const a = bindCdev(host, proc, endpointBdf(0));
  const b = bindCdev(host, proc, endpointBdf(1));
  b.vdev.hooks.configRead.tap({ name: 'bench-identity' }, (value) => value);
  return { plain: configReader(proc, a.fd, a.vdev), tapped: configReader(proc, b.fd, b.vdev) };
}

export function configCases(): BenchCase[] {
  const { plain, tapped } = configReaders();
  const hook = plain.vdev.hooks.configRead;
  return [
    {
      name: CONFIG_NO_TAP,
      unit: 'read',
      batch: BATCH,
      reference: MAP_GET,
      run: () => {
        for (let i = 0; i < BATCH; i++) blackhole.value += plain.read();
      },
    },
    {
      name: CONFIG_TAP,
      unit: 'read',
      batch: BATCH,
      reference: MAP_GET,
      run: () => {
        for (let i = 0; i < BATCH; i++) blackhole.value += tapped.read();
      },
    },
    {
      // What an untapped hook adds to each 4-byte read: the one isUsed() check on its path.
      name: HOOK_GUARD,
      unit: 'check',
      batch: 1000,
      run: () => {
        for (let i = 0; i < 1000; i++) if (hook.isUsed()) blackhole.value++;
      },
    },
  ];
}
