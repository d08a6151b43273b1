import { SimError } from '../errors/index.js';
import { PAGE_SIZE, type Frame, type OpenFile, type Process } from '../os/index.js';
import {
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  ioctlMinSizes,
  offsetofEnd,
  vfioDeviceFeatureMinData,
  readVfioArgsz,
  vfio_device_feature,
  vfio_device_feature_dma_logging_control,
  vfio_device_feature_dma_logging_range,
  vfio_device_feature_dma_logging_report,
  vfio_device_feature_mig_data_size,
  vfio_device_feature_mig_state,
  vfio_device_feature_migration,
  type StructCodec,
} from '../uapi/index.js';
import type { VfioDevice } from './vfio-device.js';

const FEATURE_MINSZ = ioctlMinSizes.vfio.VFIO_DEVICE_FEATURE.min_size;
/** The payload each core feature needs after the header (sizeof its struct), from the ABI facts. */
const minData = vfioDeviceFeatureMinData;
const GET_SET = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET;
const KNOWN_FLAGS = VFIO_DEVICE_FEATURE_MASK | GET_SET | VFIO_DEVICE_FEATURE_PROBE;
const U64_MASK = (1n << 64n) - 1n;
/** LOG_MAX_RANGES: the ranges of one DMA_LOGGING_START must fit a kernel page. */
const LOG_MAX_RANGES = PAGE_SIZE / vfio_device_feature_dma_logging_range.size;
/** iova_bitmap pins at most one page of page pointers' worth of bitmap pages at a time. */
const BITMAP_WINDOW_PAGES = PAGE_SIZE / 8;
const SZ_4K = 4096n;

/**
 * vfio_check_feature, for a driver's deviceFeature op: EINVAL if GET or SET
 * is asked for but not supported, or neither is asked for without PROBE,
 * or the payload (`argsz`, the bytes after the 8-byte header) is shorter
 * than `minsz`. Returns 0 for a PROBE that passed (answer 0 at once) and 1
 * when the driver should carry out the GET or SET.
 */
export function vfioCheckFeature(flags: number, argsz: number, supportedOps: number, minsz: number): 0 | 1 {
  if ((flags & GET_SET & ~supportedOps) !== 0) {
    throw new SimError('INVALID_ARGUMENT', `device feature: flags 0x${(flags >>> 0).toString(16)} ask for an operation it does not support`);
  }
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return 0;
  if ((flags & GET_SET) === 0) throw new SimError('INVALID_ARGUMENT', 'device feature: neither GET nor SET without PROBE');
  if (argsz < minsz) throw new SimError('INVALID_ARGUMENT', `device feature: ${argsz} bytes of data, needs ${minsz}`);
  return 1;
}

function encode<T>(codec: StructCodec<T>, value: T): Uint8Array {
  const bytes = codec.encodeNew();
  codec.encode(value, bytes);
  return bytes;
}

function decode<T>(codec: StructCodec<T>, proc: Process, at: bigint, length: number): T {
  const bytes = codec.encodeNew();
  bytes.set(proc.mm.copyFromUser(at, length));
  return codec.decode(bytes);
}

function requireMigration(device: VfioDevice): NonNullable<VfioDevice['migOps']> {
  if (!device.migOps) throw new SimError('UNKNOWN_IOCTL', `${device.name} does not support migration`);
  return device.migOps;
}

function requireLogging(device: VfioDevice): NonNullable<VfioDevice['logOps']> {
  if (!device.logOps) throw new SimError('UNKNOWN_IOCTL', `${device.name} does not support DMA logging`);
  return device.logOps;
}

/** VFIO_DEVICE_FEATURE_MIGRATION (GET): the VFIO_MIGRATION_* flags of the device. */
function featureMigration(device: VfioDevice, proc: Process, flags: number, data: bigint, argsz: number): number {
  requireMigration(device);
  if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_GET, minData.VFIO_DEVICE_FEATURE_MIGRATION.min_data) === 0) return 0;
  proc.mm.copyToUser(data, encode(vfio_device_feature_migration, { flags: BigInt(device.migrationFlags) }));
  return 0;
}

/**
 * VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: GET reads the state; SET asks the
 * driver for one FSM step, and an arc that opens a data stream installs its
 * file as data_fd (O_CLOEXEC). data_fd is written back as -1 otherwise,
 * even when the driver refused the arc: the struct goes back to the user
 * before the error is returned.
 */
function featureMigDeviceState(device: VfioDevice, proc: Process, flags: number, data: bigint, argsz: number): number {
  const migOps = requireMigration(device);
  if (vfioCheckFeature(flags, argsz, GET_SET, minData.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE.min_data) === 0) return 0;
  const mig = decode(vfio_device_feature_mig_state, proc, data, offsetofEnd(vfio_device_feature_mig_state, 'data_fd'));
  if (flags & VFIO_DEVICE_FEATURE_GET) {
    mig.device_state = migOps.migrationGetState(device);
    mig.data_fd = -1;
    proc.mm.copyToUser(data, encode(vfio_device_feature_mig_state, mig));
    return 0;
  }
  let stream: OpenFile | null;
  try {
    stream = migOps.migrationSetState(device, mig.device_state);
  } catch (error) {
    if (!(error instanceof SimError)) throw error;
    proc.mm.copyToUser(data, encode(vfio_device_feature_mig_state, { ...mig, data_fd: -1 }));
    throw error;
  }
  if (!stream) {
    proc.mm.copyToUser(data, encode(vfio_device_feature_mig_state, { ...mig, data_fd: -1 }));
    return 0;
  }
  let fd: number;
  try {
    fd = proc.files.reserve(true);
  } catch (error) {
    stream.put();
    throw error;
  }
  try {
    proc.mm.copyToUser(data, encode(vfio_device_feature_mig_state, { ...mig, data_fd: fd }));
  } catch (error) {
    proc.files.unreserve(fd);
    stream.put();
    throw error;
  }
  proc.files.install(fd, stream);
  return 0;
}

/** VFIO_DEVICE_FEATURE_MIG_DATA_SIZE (GET): the device's estimate of its STOP_COPY data. */
function featureMigDataSize(device: VfioDevice, proc: Process, flags: number, data: bigint, argsz: number): number {
  const migOps = requireMigration(device);
  if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_GET, minData.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE.min_data) === 0) return 0;
  const length = migOps.migrationGetDataSize(device);
  proc.mm.copyToUser(data, encode(vfio_device_feature_mig_data_size, { stop_copy_length: length }));
  return 0;
}

/** IS_ALIGNED(x, a) as C computes it: x & (a - 1), with a - 1 wrapping for a = 0. */
function isAligned(x: bigint, a: bigint): boolean {
  return (x & ((a - 1n) & U64_MASK)) === 0n;
}

/**
 * VFIO_DEVICE_FEATURE_DMA_LOGGING_START (SET): 1 to LOG_MAX_RANGES ranges
 * (EINVAL for none, E2BIG for more), each aligned to page_size (EINVAL),
 * not wrapping past 2^64 (EOVERFLOW) and not overlapping another (EINVAL).
 * The driver may change page_size; the control struct is written back.
 */
function featureLoggingStart(device: VfioDevice, proc: Process, flags: number, data: bigint, argsz: number): number {
  const logOps = requireLogging(device);
  if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, minData.VFIO_DEVICE_FEATURE_DMA_LOGGING_START.min_data) === 0) return 0;
  const control = decode(vfio_device_feature_dma_logging_control, proc, data, offsetofEnd(vfio_device_feature_dma_logging_control, 'ranges'));
  if (control.num_ranges === 0) throw new SimError('INVALID_ARGUMENT', 'DMA logging needs at least one range');
  if (control.num_ranges > LOG_MAX_RANGES) {
    throw new SimError('TOO_MANY_ENTRIES', `DMA logging takes at most ${LOG_MAX_RANGES} ranges, got ${control.num_ranges}`);
  }
  const ranges: { iova: bigint; length: bigint }[] = [];
  const nodes: { start: bigint; last: bigint }[] = [];
  const rangeSize = vfio_device_feature_dma_logging_range.size;
  for (let i = 0; i < control.num_ranges; i++) {
    const at = (control.ranges + BigInt(i * rangeSize)) & U64_MASK;
    const range = vfio_device_feature_dma_logging_range.decode(proc.mm.copyFromUser(at, rangeSize));
    if (!isAligned(range.iova, control.page_size) || !isAligned(range.length, control.page_size)) {
      throw new SimError('INVALID_ARGUMENT', `range ${i} is not aligned to page size 0x${control.page_size.toString(16)}`);
    }
    if (range.iova + range.length > U64_MASK) throw new SimError('OVERFLOW', `range ${i} wraps past the end of the IOVA space`);
    const node = { start: range.iova, last: (range.iova + range.length - 1n) & U64_MASK };
    if (nodes.some((other) => other.start <= node.last && node.start <= other.last)) {
      throw new SimError('INVALID_ARGUMENT', `range ${i} overlaps an earlier range`);
    }
    nodes.push(node);
    ranges.push(range);
  }
  const pageSize = logOps.logStart(device, ranges, control.page_size);
  try {
    proc.mm.copyToUser(data, encode(vfio_device_feature_dma_logging_control, { ...control, page_size: pageSize }));
  } catch (error) {
    logOps.logStop(device);
    throw error;
  }
  return 0;
}

/** VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP (SET, no data). */
function featureLoggingStop(device: VfioDevice, _proc: Process, flags: number, _data: bigint, argsz: number): number {
  const logOps = requireLogging(device);
  if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_SET, minData.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP.min_data) === 0) return 0;
  logOps.logStop(device);
  return 0;
}

/**
 * VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT (GET): page_size must be a power of
 * two of at least 4 KiB (EINVAL) and [iova, iova + length) must not wrap
 * (EOVERFLOW). The user's bitmap (one bit per page, in u64 words) is pinned
 * for writing a window at a time, as iova_bitmap does; an unwritable window
 * ends the report with EFAULT after the windows before it were filled.
 * Bits are only ever set: the caller clears the bitmap first.
 */
function featureLoggingReport(device: VfioDevice, proc: Process, flags: number, data: bigint, argsz: number): number {
  const logOps = requireLogging(device);
  if (vfioCheckFeature(flags, argsz, VFIO_DEVICE_FEATURE_GET, minData.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT.min_data) === 0) return 0;
  const report = decode(vfio_device_feature_dma_logging_report, proc, data, offsetofEnd(vfio_device_feature_dma_logging_report, 'bitmap'));
  const pageSize = report.page_size;
  if (pageSize < SZ_4K || (pageSize & (pageSize - 1n)) !== 0n) {
    throw new SimError('INVALID_ARGUMENT', `report page size 0x${pageSize.toString(16)} is not a power of two of at least 4K`);
  }
  if (report.iova + report.length > U64_MASK) throw new SimError('OVERFLOW', 'report range wraps past the end of the IOVA space');
  const pgshift = BigInt(pageSize.toString(2).length - 1);
  const wordSpan = 64n << pgshift;
  const totalWords = (((report.length - 1n) & U64_MASK) / wordSpan) + 1n;
  const end = (report.iova + report.length - 1n) & U64_MASK;
  let base = 0n;
  while (base < totalWords) {
    const addr = (report.bitmap + base * 8n) & U64_MASK;
    const pgoff = addr % BigInt(PAGE_SIZE);
    const needed = Number(((totalWords - base) * 8n + BigInt(PAGE_SIZE) - 1n) / BigInt(PAGE_SIZE)) + (pgoff !== 0n ? 1 : 0);
    const npages = Math.min(needed, BITMAP_WINDOW_PAGES);
    const frames: Frame[] = proc.mm.pinUserPages(addr, npages, true);
    try {
      const windowBytes = BigInt(npages * PAGE_SIZE) - pgoff;
      const words = totalWords - base < (windowBytes + 7n) / 8n ? totalWords - base : (windowBytes + 7n) / 8n;
      const iova = (report.iova + base * wordSpan) & U64_MASK;
      let length = words * wordSpan;
      if (iova + length - 1n > end) length -= iova + length - 1n - end;
      logOps.logReadAndClear(device, iova, length, (dirty) => {
        if (dirty < iova || dirty - iova >= length) return;
        const bit = ((dirty - iova) >> pgshift) + pgoff * 8n;
        const frame = frames[Number(bit / BigInt(PAGE_SIZE * 8))]!;
        const inPage = Number(bit % BigInt(PAGE_SIZE * 8));
        frame.data[inPage >> 3] = frame.data[inPage >> 3]! | (1 << (inPage & 7));
      });
      // iova_bitmap_advance steps by the IOVA length reported, so a zero
      // length ends the walk after one call.
      base += (((length - 1n) & U64_MASK) / wordSpan) + 1n;
    } finally {
      for (const frame of frames) frame.unpin();
    }
  }
  return 0;
}

type FeatureHandler = (device: VfioDevice, proc: Process, flags: number, data: bigint, argsz: number) => number;

const coreFeatures = new Map<number, FeatureHandler>([
  [VFIO_DEVICE_FEATURE_MIGRATION, featureMigration],
  [VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, featureMigDeviceState],
  [VFIO_DEVICE_FEATURE_DMA_LOGGING_START, featureLoggingStart],
  [VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, featureLoggingStop],
  [VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, featureLoggingReport],
  [VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, featureMigDataSize],
]);

/**
 * VFIO_DEVICE_FEATURE (vfio_ioctl_device_feature): argsz below 8 or flag
 * bits outside the feature index, GET, SET and PROBE are EINVAL, as is GET
 * with SET unless PROBE is set. The migration and DMA-logging features are
 * the core's (ENOTTY when the device lacks the ops); every other feature
 * goes to the driver's deviceFeature op, with the payload address and size
 * after the header (EINVAL without the op).
 */
export function deviceFeatureIoctl(device: VfioDevice, proc: Process, argp: bigint): number {
  const { value: feature, userSize } = readVfioArgsz(proc.mm, argp, vfio_device_feature, FEATURE_MINSZ);
  const flags = feature.flags;
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new SimError('UNKNOWN_FLAGS', `VFIO_DEVICE_FEATURE flags 0x${(flags >>> 0).toString(16)}`);
  }
  if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && (flags & GET_SET) === GET_SET) {
    throw new SimError('INVALID_ARGUMENT', 'VFIO_DEVICE_FEATURE: GET and SET together without PROBE');
  }
  const data = (argp + BigInt(FEATURE_MINSZ)) & U64_MASK;
  const argsz = userSize - FEATURE_MINSZ;
  const handler = coreFeatures.get(flags & VFIO_DEVICE_FEATURE_MASK);
  if (handler) return handler(device, proc, flags, data, argsz);
  if (!device.ops.deviceFeature) throw new SimError('INVALID_ARGUMENT', `${device.name} has no device features`);
  return device.ops.deviceFeature(device, proc, flags, data, argsz);
}
