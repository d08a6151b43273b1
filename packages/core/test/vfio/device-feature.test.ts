import { beforeEach, describe, expect, it } from 'vitest';
import {
  Errno,
  OpenFile,
  SimError,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_STATE_ERROR,
  VFIO_DEVICE_STATE_PRE_COPY,
  VFIO_DEVICE_STATE_RESUMING,
  VFIO_DEVICE_STATE_RUNNING,
  VFIO_DEVICE_STATE_STOP,
  VFIO_DEVICE_STATE_STOP_COPY,
  VFIO_MIGRATION_P2P,
  VFIO_MIGRATION_STOP_COPY,
  VFIO_DEVICE_BIND_IOMMUFD,
  vfioCheckFeature,
  vfioMigGetNextState,
  vfio_device_bind_iommufd,
  vfio_device_feature_dma_logging_control,
  vfio_device_feature_dma_logging_range,
  vfio_device_feature_dma_logging_report,
  type FileOperations,
  type Process,
  type VfioDevice,
  type VfioLogOps,
  type VfioMigrationOps,
} from '@vfiosim/core';
import { fixtureDriver, makeHost, spawnWithScratch, type Host } from './harness.js';

const FN = '0000:00:01.0';
const GET = VFIO_DEVICE_FEATURE_GET;
const SET = VFIO_DEVICE_FEATURE_SET;
const PROBE = VFIO_DEVICE_FEATURE_PROBE;

const streamOps: FileOperations = { kind: 'fixture-mig-stream' };

/** A device that implements the migration arcs the FSM hands it and logs which it took. */
class FixtureMigration implements VfioMigrationOps {
  state = VFIO_DEVICE_STATE_RUNNING;
  readonly arcs: string[] = [];
  migrationSetState(vdev: VfioDevice, target: number): OpenFile | null {
    let stream: OpenFile | null = null;
    while (this.state !== target) {
      const next = vfioMigGetNextState(vdev.migrationFlags, this.state, target);
      this.arcs.push(`${this.state}->${next}`);
      if (next === VFIO_DEVICE_STATE_STOP_COPY || next === VFIO_DEVICE_STATE_RESUMING) stream = new OpenFile(streamOps, 0);
      this.state = next;
    }
    return stream;
  }
  migrationGetState(): number {
    return this.state;
  }
  migrationGetDataSize(): bigint {
    return 0x123456789n;
  }
}

class FixtureLogging implements VfioLogOps {
  started: { ranges: { iova: bigint; length: bigint }[]; pageSize: bigint } | null = null;
  stops = 0;
  readonly reports: string[] = [];
  dirty: bigint[] = [];
  logStart(_vdev: VfioDevice, ranges: readonly { iova: bigint; length: bigint }[], pageSize: bigint): bigint {
    this.started = { ranges: [...ranges], pageSize };
    return pageSize * 2n;
  }
  logStop(): void {
    this.stops++;
  }
  logReadAndClear(_vdev: VfioDevice, iova: bigint, length: bigint, setDirty: (iova: bigint) => void): void {
    this.reports.push(`${iova.toString(16)}+${length.toString(16)}`);
    for (const page of this.dirty) if (page >= iova && page < iova + length) setDirty(page);
  }
}

describe('VFIO_DEVICE_FEATURE', () => {
  let host: Host;
  let proc: Process;
  let va: bigint;
  let fd: number;
  let driver: ReturnType<typeof fixtureDriver>;
  let mig: FixtureMigration;
  let log: FixtureLogging;
  const featureCalls: string[] = [];

  function setup(withOps: boolean, deviceFeature = false): void {
    host = makeHost();
    mig = new FixtureMigration();
    log = new FixtureLogging();
    featureCalls.length = 0;
    driver = fixtureDriver(host.vfio, {
      ops: deviceFeature
        ? {
            deviceFeature: (_vdev, _proc, flags, data, argsz) => {
              featureCalls.push(`0x${flags.toString(16)} ${data} ${argsz}`);
              return 5;
            },
          }
        : {},
    });
    host.drivers.registerPciDriver(driver);
    host.addFunction(FN, 5);
    const vdev = driver.devices.get(FN)!;
    if (withOps) {
      vdev.migOps = mig;
      vdev.migrationFlags = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P;
      vdev.logOps = log;
    }
    ({ proc, va } = spawnWithScratch(host.system, 8));
    const iommufd = proc.open('/dev/iommu');
    fd = proc.open('/dev/vfio/devices/vfio0');
    proc.mem.write(va, vfio_device_bind_iommufd.encodeNew({ argsz: 24, iommufd }));
    expect(proc.ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, va)).toBe(0);
  }

  /** Writes the 8-byte header and the payload, then issues the ioctl. */
  function feature(flags: number, payload: Uint8Array = new Uint8Array(0), argsz = 8 + payload.length): number {
    const header = new Uint8Array(8);
    new DataView(header.buffer).setUint32(0, argsz, true);
    new DataView(header.buffer).setUint32(4, flags >>> 0, true);
    proc.mem.write(va, header);
    proc.mem.write(va + 8n, payload);
    return proc.ioctl(fd, VFIO_DEVICE_FEATURE, va);
  }

  function u64s(...values: bigint[]): Uint8Array {
    const bytes = new Uint8Array(values.length * 8);
    values.forEach((v, i) => new DataView(bytes.buffer).setBigUint64(i * 8, v, true));
    return bytes;
  }

  function migState(state: number, dataFd = 0x55): Uint8Array {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setUint32(0, state, true);
    new DataView(bytes.buffer).setInt32(4, dataFd, true);
    return bytes;
  }

  beforeEach(() => setup(true));

  describe('the header', () => {
    it('answers EINVAL for argsz below 8 and EFAULT for an unmapped header', () => {
      expect(feature(GET | VFIO_DEVICE_FEATURE_MIGRATION, new Uint8Array(8), 7)).toBe(-Errno.EINVAL);
      expect(proc.ioctl(fd, VFIO_DEVICE_FEATURE, 0x1000n)).toBe(-Errno.EFAULT);
    });

    it('answers EINVAL for flag bits beyond the index, GET, SET and PROBE', () => {
      expect(feature((1 << 19) | GET | VFIO_DEVICE_FEATURE_MIGRATION, new Uint8Array(8))).toBe(-Errno.EINVAL);
    });

    it('answers EINVAL for GET with SET unless PROBE is set', () => {
      expect(feature(GET | SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, migState(VFIO_DEVICE_STATE_STOP))).toBe(-Errno.EINVAL);
      expect(mig.arcs).toEqual([]);
      expect(feature(PROBE | GET | SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE)).toBe(0);
    });

    it('answers EINVAL for a feature the core does not know and the driver has no op for', () => {
      expect(feature(GET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, new Uint8Array(16))).toBe(-Errno.EINVAL);
      expect(feature(PROBE | 0x7ff)).toBe(-Errno.EINVAL);
    });

    it('hands other features to the driver with the payload address and size', () => {
      setup(false, true);
      expect(feature(SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, new Uint8Array(16))).toBe(5);
      expect(featureCalls).toEqual([`0x${(SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN).toString(16)} ${va + 8n} 16`]);
    });
  });

  describe('vfioCheckFeature', () => {
    function check(flags: number, argsz: number, supported: number, minsz: number): number | string {
      try {
        return vfioCheckFeature(flags, argsz, supported, minsz);
      } catch (error) {
        return (error as SimError).errnoName;
      }
    }

    it('refuses GET or SET the feature does not support, even with PROBE', () => {
      expect(check(SET, 8, GET, 8)).toBe('EINVAL');
      expect(check(SET | PROBE, 8, GET, 8)).toBe('EINVAL');
    });

    it('answers 0 for PROBE without looking at the size', () => {
      expect(check(PROBE, 0, GET, 8)).toBe(0);
      expect(check(PROBE | GET, 0, GET, 8)).toBe(0);
    });

    it('needs GET or SET without PROBE, and enough payload', () => {
      expect(check(0, 8, GET, 8)).toBe('EINVAL');
      expect(check(GET, 7, GET, 8)).toBe('EINVAL');
      expect(check(GET, 8, GET, 8)).toBe(1);
    });
  });

  describe('migration', () => {
    it('answers ENOTTY for every migration feature on a device without migration ops', () => {
      setup(false);
      expect(feature(GET | VFIO_DEVICE_FEATURE_MIGRATION, new Uint8Array(8))).toBe(-Errno.ENOTTY);
      expect(feature(PROBE | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE)).toBe(-Errno.ENOTTY);
      expect(feature(GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, new Uint8Array(8))).toBe(-Errno.ENOTTY);
    });

    it('reports the migration flags as a u64', () => {
      expect(feature(GET | VFIO_DEVICE_FEATURE_MIGRATION, new Uint8Array(8).fill(0xff))).toBe(0);
      expect(proc.mem.readU64(va + 8n)).toBe(BigInt(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P));
    });

    it('answers EINVAL to SET of the migration flags and to a short payload', () => {
      expect(feature(SET | VFIO_DEVICE_FEATURE_MIGRATION, new Uint8Array(8))).toBe(-Errno.EINVAL);
      expect(feature(GET | VFIO_DEVICE_FEATURE_MIGRATION, new Uint8Array(7))).toBe(-Errno.EINVAL);
    });

    it('reads the device state with data_fd -1', () => {
      expect(feature(GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, migState(0))).toBe(0);
      expect(proc.mem.readU32(va + 8n)).toBe(VFIO_DEVICE_STATE_RUNNING);
      expect(proc.mem.readU32(va + 12n)).toBe(0xffffffff);
    });

    it('walks the FSM to STOP_COPY and returns the data stream as a close-on-exec fd', () => {
      expect(feature(SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, migState(VFIO_DEVICE_STATE_STOP_COPY))).toBe(0);
      expect(mig.arcs).toEqual([
        `${VFIO_DEVICE_STATE_RUNNING}->5`,
        `5->${VFIO_DEVICE_STATE_STOP}`,
        `${VFIO_DEVICE_STATE_STOP}->${VFIO_DEVICE_STATE_STOP_COPY}`,
      ]);
      const dataFd = proc.mem.readU32(va + 12n);
      expect(proc.fdget(dataFd).ops).toBe(streamOps);
      expect(proc.files.isCloexec(dataFd)).toBe(true);
    });

    it('writes data_fd -1 back for an arc without a stream', () => {
      expect(feature(SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, migState(VFIO_DEVICE_STATE_STOP))).toBe(0);
      expect(proc.mem.readU32(va + 12n)).toBe(0xffffffff);
    });

    it('writes data_fd -1 back even when the driver refuses the state', () => {
      expect(feature(SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, migState(VFIO_DEVICE_STATE_PRE_COPY))).toBe(-Errno.EINVAL);
      expect(proc.mem.readU32(va + 8n)).toBe(VFIO_DEVICE_STATE_PRE_COPY);
      expect(proc.mem.readU32(va + 12n)).toBe(0xffffffff);
      expect(feature(SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, migState(VFIO_DEVICE_STATE_ERROR))).toBe(-Errno.EINVAL);
      expect(mig.state).toBe(VFIO_DEVICE_STATE_RUNNING);
    });

    it('answers EINVAL to a state payload shorter than 8 bytes', () => {
      expect(feature(SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, migState(VFIO_DEVICE_STATE_STOP).subarray(0, 4))).toBe(-Errno.EINVAL);
      expect(mig.arcs).toEqual([]);
    });

    it('reports the STOP_COPY data size', () => {
      expect(feature(GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, new Uint8Array(8))).toBe(0);
      expect(proc.mem.readU64(va + 8n)).toBe(0x123456789n);
      expect(feature(SET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, new Uint8Array(8))).toBe(-Errno.EINVAL);
    });
  });

  describe('DMA logging', () => {
    const rangesVa = () => va + 0x1000n;

    function start(pageSize: bigint, ranges: [bigint, bigint][], count = ranges.length): number {
      ranges.forEach(([iova, length], i) =>
        proc.mem.write(rangesVa() + BigInt(i * 16), vfio_device_feature_dma_logging_range.encodeNew({ iova, length })));
      const control = vfio_device_feature_dma_logging_control.encodeNew({ page_size: pageSize, num_ranges: count, ranges: rangesVa() });
      return feature(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, control);
    }

    it('answers ENOTTY without logging ops', () => {
      setup(false);
      expect(start(4096n, [[0n, 4096n]])).toBe(-Errno.ENOTTY);
      expect(feature(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP)).toBe(-Errno.ENOTTY);
    });

    it('starts logging and writes back the page size the driver chose', () => {
      expect(start(4096n, [[0n, 0x10000n], [0x100000n, 0x2000n]])).toBe(0);
      expect(log.started).toEqual({ ranges: [{ iova: 0n, length: 0x10000n }, { iova: 0x100000n, length: 0x2000n }], pageSize: 4096n });
      expect(proc.mem.readU64(va + 8n)).toBe(8192n);
    });

    it('answers EINVAL for no ranges and E2BIG for more than fit a page', () => {
      expect(start(4096n, [], 0)).toBe(-Errno.EINVAL);
      expect(start(4096n, [], 257)).toBe(-Errno.E2BIG);
      expect(log.started).toBeNull();
    });

    it('answers EINVAL for ranges not aligned to the page size', () => {
      expect(start(4096n, [[0x800n, 4096n]])).toBe(-Errno.EINVAL);
      expect(start(4096n, [[0n, 0x800n]])).toBe(-Errno.EINVAL);
      expect(start(0n, [[0x1000n, 0x1000n]])).toBe(-Errno.EINVAL);
    });

    it('answers EOVERFLOW for a range that wraps and EINVAL for overlapping ranges', () => {
      expect(start(4096n, [[0xfffffffffffff000n, 0x2000n]])).toBe(-Errno.EOVERFLOW);
      expect(start(4096n, [[0n, 0x3000n], [0x2000n, 0x1000n]])).toBe(-Errno.EINVAL);
      expect(log.started).toBeNull();
    });

    it('answers EFAULT for an unreadable range array', () => {
      const control = vfio_device_feature_dma_logging_control.encodeNew({ page_size: 4096n, num_ranges: 1, ranges: 0x1000n });
      expect(feature(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, control)).toBe(-Errno.EFAULT);
    });

    it('answers EINVAL for a control payload shorter than 24 bytes, unless probing', () => {
      expect(feature(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, new Uint8Array(16))).toBe(-Errno.EINVAL);
      expect(feature(PROBE | SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START)).toBe(0);
    });

    it('stops logging', () => {
      expect(feature(SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP)).toBe(0);
      expect(log.stops).toBe(1);
      expect(feature(GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP)).toBe(-Errno.EINVAL);
    });

    describe('the report', () => {
      const bitmapVa = () => va + 0x2000n;

      function report(iova: bigint, length: bigint, pageSize: bigint, bitmap = bitmapVa()): number {
        return feature(GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, vfio_device_feature_dma_logging_report.encodeNew({ iova, length, page_size: pageSize, bitmap }));
      }

      it('sets one bit per dirty page and leaves the others as they were', () => {
        log.dirty = [0x100000n, 0x102000n, 0x13f000n];
        proc.mem.write(bitmapVa(), Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0x80));
        expect(report(0x100000n, 0x40000n, 4096n)).toBe(0);
        expect(log.reports).toEqual(['100000+40000']);
        expect(proc.mem.readU64(bitmapVa())).toBe((1n << 0n) | (1n << 2n) | (1n << 63n));
      });

      it('answers EINVAL for a page size below 4K or not a power of two', () => {
        expect(report(0n, 0x1000n, 2048n)).toBe(-Errno.EINVAL);
        expect(report(0n, 0x3000n, 0x3000n)).toBe(-Errno.EINVAL);
        expect(log.reports).toEqual([]);
      });

      it('answers EOVERFLOW for a range that wraps', () => {
        expect(report(0xfffffffffffff000n, 0x2000n, 4096n)).toBe(-Errno.EOVERFLOW);
      });

      it('answers EFAULT for a bitmap that cannot be written', () => {
        log.dirty = [0n];
        expect(report(0n, 0x1000n, 4096n, 0x1000n)).toBe(-Errno.EFAULT);
        expect(log.reports).toEqual([]);
      });

      it('answers EINVAL for a report payload shorter than 32 bytes', () => {
        expect(feature(GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, new Uint8Array(24))).toBe(-Errno.EINVAL);
      });
    });
  });
});
