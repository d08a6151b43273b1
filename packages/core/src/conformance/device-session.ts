import { EFD_NONBLOCK } from '../os/index.js';
import { vfioPciIndexToOffset } from '../pci-core/offsets.js';
import {
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_PCI_CONFIG_REGION_INDEX,
  offsetofEnd,
  vfio_device_feature_mig_state,
  vfio_device_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_region_info,
} from '../uapi/index.js';
import type { BoundDevice } from './bound-device.js';
import { expectRc, rule } from './expect.js';

/*
 * The device fd as QEMU's hw/vfio/pci.c drives it: config space through
 * pread/pwrite of the config region, the info ioctls, SET_IRQS with
 * eventfds, VFIO_DEVICE_FEATURE, VFIO_DEVICE_RESET. Raw calls; results are
 * returned, not judged, except config accesses, which must always succeed.
 *
 * Public API: DeviceSession
 */

const CONFIG = vfioPciIndexToOffset(VFIO_PCI_CONFIG_REGION_INDEX);
/** Scratch offset of VFIO_DEVICE_FEATURE's header and payload. */
const FEATURE_AT = 0x2000;

export class DeviceSession {
  constructor(readonly dev: BoundDevice) {}

  get fd(): number {
    return this.dev.fd;
  }

  /** pread of `size` bytes of config space at `offset`: the little-endian value. */
  cfgRead(offset: number, size: 1 | 2 | 4): number {
    const buf = new Uint8Array(size);
    expectRc(this.dev.user.proc.pread(this.fd, buf, CONFIG + BigInt(offset)), size, rule(
      `pread of ${size} bytes at config offset 0x${offset.toString(16)}`,
      'vfio_pci_config_rw() serves an aligned access inside config space with the full count',
    ));
    return buf.reduceRight((value, byte) => value * 256 + byte, 0);
  }

  /** pwrite of `size` bytes of `value` at config offset `offset`. */
  cfgWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    const buf = Uint8Array.from({ length: size }, (_, i) => Math.floor(value / 256 ** i) & 0xff);
    expectRc(this.dev.user.proc.pwrite(this.fd, buf, CONFIG + BigInt(offset)), size, rule(
      `pwrite of ${size} bytes at config offset 0x${offset.toString(16)}`,
      'vfio_pci_config_rw() takes an aligned write inside config space and returns the full count, '
        + 'dropping the bits the permission table does not let through',
    ));
  }

  deviceInfo() {
    const { rc, out } = this.dev.user.ioctl(this.fd, VFIO_DEVICE_GET_INFO, vfio_device_info, { argsz: vfio_device_info.size });
    return { rc, info: out };
  }

  /** VFIO_DEVICE_GET_REGION_INFO with `argsz` (default the struct); `bytes` holds the struct and any capability chain. */
  regionInfo(index: number, argsz = vfio_region_info.size) {
    const tail = Math.max(0, argsz - vfio_region_info.size);
    const { rc, out, bytes } = this.dev.user.ioctl(this.fd, VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { argsz, index }, {
      size: Math.min(argsz, vfio_region_info.size),
      tail,
    });
    return { rc, info: out, bytes };
  }

  irqInfo(index: number) {
    const { rc, out } = this.dev.user.ioctl(this.fd, VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info, { argsz: vfio_irq_info.size, index });
    return { rc, info: out };
  }

  /** VFIO_DEVICE_SET_IRQS with eventfds (DATA_EVENTFD) or none (DATA_NONE). */
  setIrqs(flags: number, index: number, start: number, count: number, eventfds: readonly number[] = []): number {
    const header = offsetofEnd(vfio_irq_set, 'count');
    const bytes = new Uint8Array(header + eventfds.length * 4);
    bytes.set(vfio_irq_set.encodeNew({ argsz: bytes.length, flags, index, start, count }).subarray(0, header));
    const view = new DataView(bytes.buffer);
    eventfds.forEach((fd, i) => view.setInt32(header + i * 4, fd, true));
    const { user } = this.dev;
    user.write(user.scratch, bytes);
    return user.proc.ioctl(this.fd, VFIO_DEVICE_SET_IRQS, user.scratch);
  }

  /** A new eventfd and a reader of how often it was signalled since the last read. */
  eventfd(): { fd: number; signals(): bigint } {
    const { proc } = this.dev.user;
    const fd = proc.eventfd(0, EFD_NONBLOCK);
    return {
      fd,
      signals: () => {
        const buf = new Uint8Array(8);
        return proc.read(fd, buf) === 8 ? new DataView(buf.buffer).getBigUint64(0, true) : 0n;
      },
    };
  }

  /** VFIO_DEVICE_FEATURE: the 8-byte header then `payload`; returns rc and the payload as left by the kernel. */
  feature(flags: number, payload: Uint8Array = new Uint8Array(0)): { rc: number; payload: Uint8Array } {
    const { user } = this.dev;
    const header = new Uint8Array(8);
    const view = new DataView(header.buffer);
    view.setUint32(0, 8 + payload.length, true);
    view.setUint32(4, flags >>> 0, true);
    user.write(user.at(FEATURE_AT), header);
    user.write(user.at(FEATURE_AT + 8), payload);
    const rc = user.proc.ioctl(this.fd, VFIO_DEVICE_FEATURE, user.at(FEATURE_AT));
    return { rc, payload: user.read(user.at(FEATURE_AT + 8), payload.length) };
  }

  /** VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE GET: rc and the state. */
  migState(): { rc: number; state: number } {
    const { rc, payload } = this.feature(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, vfio_device_feature_mig_state.encodeNew());
    return { rc, state: vfio_device_feature_mig_state.decode(payload).device_state };
  }

  /** VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET: rc and the data_fd written back. */
  setMigState(state: number): { rc: number; dataFd: number } {
    const { rc, payload } = this.feature(
      VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
      vfio_device_feature_mig_state.encodeNew({ device_state: state, data_fd: 0x5a5a }),
    );
    return { rc, dataFd: vfio_device_feature_mig_state.decode(payload).data_fd };
  }

  reset(): number {
    return this.dev.user.proc.ioctl(this.fd, VFIO_DEVICE_RESET, 0n);
  }
}
