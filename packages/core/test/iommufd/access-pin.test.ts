import { describe, expect, it } from 'vitest';
import {
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_SET,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_SET,
  VFIO_IOMMU_UNMAP_DMA,
  iommu_ioas_unmap,
  iommu_option,
  iommu_vfio_ioas,
  syscall,
  vfio_iommu_type1_dma_unmap,
  type IommufdAccessHandle,
  type IommufdIoas,
} from '@vfiosim/core';
import { err, IommufdFixture, PAGE_SIZE } from './fixture.js';

/*
 * iommufd_access_pin_pages / _unpin_pages / _rw: how an emulated device's
 * driver reaches the memory of an IOAS (the kernel API vfio's emulated
 * devices call; there is no ioctl for it). What userspace sees is the
 * other side: IOAS_UNMAP of memory an access holds first makes the driver
 * let go.
 */

/** Inside the mock IOMMU's aperture, so a device's domain can map it too. */
const IOVA = 0x100_0000n;
const ULONG_MAX = (1n << 64n) - 1n;

interface Driver {
  readonly access: IommufdAccessHandle;
  readonly unmaps: [bigint, bigint][];
  /** The pins the driver holds, as (iova, length). */
  readonly pins: [bigint, bigint][];
  /** A driver that ignores unmap requests (a kernel bug) when false. */
  cooperative: boolean;
  pin(iova: bigint, length: bigint, write?: boolean): number;
}

/** An IOAS with `pages` pages of the buffer mapped at IOVA, and a pinning access attached to it. */
function setup(pages = 4n, flags?: number) {
  const f = new IommufdFixture();
  const ioas = f.ioasAlloc();
  expect(f.map(ioas, f.buffer, PAGE_SIZE * pages, IOVA, flags).rc).toBe(0);
  const driver = {
    unmaps: [] as [bigint, bigint][],
    pins: [] as [bigint, bigint][],
    cooperative: true,
  } as Driver & { access: IommufdAccessHandle };
  const access = f.iommufd.accessCreate(f.ictx, {
    needsPinPages: true,
    unmap: (iova, length) => {
      driver.unmaps.push([iova, length]);
      if (!driver.cooperative) return;
      for (const [at, len] of driver.pins.splice(0)) f.iommufd.accessUnpinPages(access, at, len);
    },
  });
  Object.assign(driver, {
    access,
    pin: (iova: bigint, length: bigint, write = true) => syscall(() => {
      const frames = f.iommufd.accessPinPages(access, iova, length, write);
      driver.pins.push([iova, length]);
      return frames.length;
    }),
  });
  f.iommufd.accessAttach(access, ioas);
  const iopt = () => f.ictx.objects.get<IommufdIoas>(ioas, 'ioas').iopt;
  const unmap = (iova: bigint, length: bigint) => f.ioctl(IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { ioas_id: ioas, iova, length });
  return { f, ioas, driver: driver as Driver, iopt, unmap };
}

describe('iommufd_access_pin_pages / iommufd_access_unpin_pages', () => {
  it('gives the frames behind the IOVAs and keeps them pinned, without any domain, until the driver unpins', () => {
    const { f, driver } = setup();
    const frames = f.iommufd.accessPinPages(driver.access, IOVA + PAGE_SIZE, PAGE_SIZE * 2n, true);
    expect(frames.map((frame) => frame.pa)).toEqual([f.proc.mm.translate(f.buffer + PAGE_SIZE), f.proc.mm.translate(f.buffer + PAGE_SIZE * 2n)]);
    expect(f.system.physMem.pinnedFrames).toBe(2);
    // The same range again is one more user of the same pins.
    expect(f.iommufd.accessPinPages(driver.access, IOVA + PAGE_SIZE, PAGE_SIZE * 2n, false)).toEqual(frames);
    f.iommufd.accessUnpinPages(driver.access, IOVA + PAGE_SIZE, PAGE_SIZE * 2n);
    expect(f.system.physMem.pinnedFrames).toBe(2);
    f.iommufd.accessUnpinPages(driver.access, IOVA + PAGE_SIZE, PAGE_SIZE * 2n);
    expect(f.system.physMem.pinnedFrames).toBe(0);
  });

  it('shares pins with the domains: the pages stay pinned after the last domain goes while the access holds them', () => {
    const { f, ioas, driver } = setup();
    const { idev } = f.bindDevice();
    f.iommufd.deviceAttach(idev, null, ioas);
    expect(f.system.physMem.pinnedFrames).toBe(4);
    expect(driver.pin(IOVA, PAGE_SIZE * 2n)).toBe(2);
    expect(f.system.physMem.pinnedFrames).toBe(4);
    f.iommufd.deviceDetach(idev, null);
    expect(f.system.physMem.pinnedFrames).toBe(2);
    f.iommufd.accessUnpinPages(driver.access, IOVA, PAGE_SIZE * 2n);
    expect(f.system.physMem.pinnedFrames).toBe(0);
  });

  it('refuses no bytes (EINVAL), a wrapping range (EOVERFLOW), a hole (ENOENT), a range not starting on a page (EINVAL), leaving no pin', () => {
    const { f, driver, iopt } = setup();
    expect(driver.pin(IOVA, 0n)).toBe(err('EINVAL'));
    expect(driver.pin(ULONG_MAX - PAGE_SIZE + 1n, PAGE_SIZE * 2n)).toBe(err('EOVERFLOW'));
    expect(driver.pin(IOVA + PAGE_SIZE * 3n, PAGE_SIZE * 2n)).toBe(err('ENOENT'));
    expect(driver.pin(IOVA - PAGE_SIZE, PAGE_SIZE * 2n)).toBe(err('ENOENT'));
    expect(driver.pin(IOVA + 0x800n, PAGE_SIZE)).toBe(err('EINVAL'));
    expect(f.system.physMem.pinnedFrames).toBe(0);
    expect(iopt().areas.map((a) => a.numAccesses)).toEqual([0]);
  });

  it('refuses a write access to a mapping that is only readable with EPERM, and takes a read', () => {
    const { f, driver } = setup(2n, IOMMU_IOAS_MAP_READABLE);
    expect(driver.pin(IOVA, PAGE_SIZE, true)).toBe(err('EPERM'));
    expect(driver.pin(IOVA, PAGE_SIZE, false)).toBe(1);
    expect(f.system.physMem.pinnedFrames).toBe(1);
  });

  it('refuses an access that is not attached with ENOENT', () => {
    const { f, driver } = setup();
    f.iommufd.accessDetach(driver.access);
    expect(driver.pin(IOVA, PAGE_SIZE)).toBe(err('ENOENT'));
    expect(syscall(() => (f.iommufd.accessRw(driver.access, IOVA, new Uint8Array(1), false), 0))).toBe(err('ENOENT'));
  });

  it('pins across adjacent areas only where each joins on a page boundary', () => {
    const { f, ioas, driver } = setup(2n);
    expect(f.map(ioas, f.buffer + PAGE_SIZE * 8n, PAGE_SIZE, IOVA + PAGE_SIZE * 2n).rc).toBe(0);
    expect(driver.pin(IOVA + PAGE_SIZE, PAGE_SIZE * 2n)).toBe(2);
    expect(f.system.physMem.pinnedFrames).toBe(2);
  });
});

describe('IOAS unmap of memory an access holds', () => {
  it('asks the driver to unpin the area first, then unmaps it', () => {
    const { f, driver, unmap } = setup();
    expect(driver.pin(IOVA + PAGE_SIZE, PAGE_SIZE)).toBe(1);
    const { rc, out } = unmap(IOVA, PAGE_SIZE * 4n);
    expect(rc).toBe(0);
    expect(out.length).toBe(PAGE_SIZE * 4n);
    expect(driver.unmaps).toEqual([[IOVA, PAGE_SIZE * 4n]]);
    expect(f.system.physMem.pinnedFrames).toBe(0);
  });

  it('gives up with EDEADLK after 101 requests to a driver that keeps its pins; the areas before it stay unmapped', () => {
    const { f, ioas, driver, iopt, unmap } = setup(2n);
    expect(f.map(ioas, f.buffer + PAGE_SIZE * 4n, PAGE_SIZE * 2n, IOVA + 0x10_0000n).rc).toBe(0);
    expect(driver.pin(IOVA + 0x10_0000n, PAGE_SIZE)).toBe(1);
    driver.cooperative = false;
    const failed = unmap(0n, ULONG_MAX);
    expect(failed.rc).toBe(err('EDEADLK'));
    expect(failed.out.length).toBe(ULONG_MAX);
    expect(driver.unmaps).toHaveLength(101);
    expect(iopt().areas.map((a) => a.start)).toEqual([IOVA + 0x10_0000n]);
    // The area stays marked as going away: no new access may start in it.
    expect(driver.pin(IOVA + 0x10_0000n, PAGE_SIZE)).toBe(err('EINVAL'));
    driver.cooperative = true;
    expect(unmap(0n, ULONG_MAX).rc).toBe(0);
    expect(f.system.physMem.pinnedFrames).toBe(0);
  });

  it('refuses to punch a hole (VFIO type1 compat) in an area an access holds, with EINVAL and nothing unmapped', () => {
    const { f, ioas, driver, iopt } = setup();
    expect(f.ioctl(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, object_id: ioas, val64: 0n }).rc).toBe(0);
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { ioas_id: ioas, op: IOMMU_VFIO_IOAS_SET }).rc).toBe(0);
    expect(driver.pin(IOVA, PAGE_SIZE)).toBe(1);
    const arg = vfio_iommu_type1_dma_unmap.encodeNew({ argsz: vfio_iommu_type1_dma_unmap.size, iova: IOVA + PAGE_SIZE, size: PAGE_SIZE });
    f.proc.mm.copyToUser(f.scratch, arg);
    expect(f.proc.ioctl(f.fd, VFIO_IOMMU_UNMAP_DMA, f.scratch)).toBe(err('EINVAL'));
    expect(vfio_iommu_type1_dma_unmap.decode(f.scratchBytes(arg.length)).size).toBe(PAGE_SIZE);
    expect(iopt().areas).toHaveLength(1);
    expect(driver.unmaps).toEqual([]);
  });

  it('moving the access to another IOAS makes the driver drop its pins; a pin meanwhile is ENOENT, its unpin works', () => {
    const f = new IommufdFixture();
    const from = f.ioasAlloc();
    const to = f.ioasAlloc();
    expect(f.map(from, f.buffer, PAGE_SIZE * 2n, IOVA).rc).toBe(0);
    const during: number[] = [];
    const access: IommufdAccessHandle = f.iommufd.accessCreate(f.ictx, {
      needsPinPages: true,
      unmap: (iova, length) => {
        during.push(syscall(() => f.iommufd.accessPinPages(access, IOVA, PAGE_SIZE, false).length));
        expect([iova, length]).toEqual([0n, ULONG_MAX]);
        f.iommufd.accessUnpinPages(access, IOVA, PAGE_SIZE * 2n);
      },
    });
    f.iommufd.accessAttach(access, from);
    expect(f.iommufd.accessPinPages(access, IOVA, PAGE_SIZE * 2n, true)).toHaveLength(2);
    f.iommufd.accessReplace(access, to);
    expect(during).toEqual([err('ENOENT')]);
    expect(f.system.physMem.pinnedFrames).toBe(0);
    expect(f.ictx.objects.get<IommufdIoas>(from, 'ioas').iopt.areas[0]!.numAccesses).toBe(0);
  });
});

describe('iommufd_access_rw', () => {
  it('reads and writes the memory behind the IOVAs, pinned or not, across areas', () => {
    const { f, ioas, driver } = setup(2n);
    expect(f.map(ioas, f.buffer + PAGE_SIZE * 8n, PAGE_SIZE, IOVA + PAGE_SIZE * 2n).rc).toBe(0);
    f.proc.mm.copyToUser(f.buffer + PAGE_SIZE * 2n - 2n, Uint8Array.of(1, 2));
    f.proc.mm.copyToUser(f.buffer + PAGE_SIZE * 8n, Uint8Array.of(3, 4));
    const out = new Uint8Array(4);
    f.iommufd.accessRw(driver.access, IOVA + PAGE_SIZE * 2n - 2n, out, false);
    expect(out).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(driver.pin(IOVA, PAGE_SIZE)).toBe(1);
    f.iommufd.accessRw(driver.access, IOVA + 0x10n, Uint8Array.of(9, 8), true);
    expect(f.proc.mm.copyFromUser(f.buffer + 0x10n, 2)).toEqual(Uint8Array.of(9, 8));
    expect(f.system.physMem.pinnedFrames).toBe(1);
  });

  it('refuses no bytes (EINVAL), a write to a read-only mapping (EPERM) and a hole (ENOENT, after copying what came before)', () => {
    const { f, driver } = setup(2n, IOMMU_IOAS_MAP_READABLE);
    const rw = (iova: bigint, data: Uint8Array, write: boolean) => syscall(() => (f.iommufd.accessRw(driver.access, iova, data, write), 0));
    expect(rw(IOVA, new Uint8Array(0), false)).toBe(err('EINVAL'));
    expect(rw(IOVA, Uint8Array.of(1), true)).toBe(err('EPERM'));
    f.proc.mm.copyToUser(f.buffer + PAGE_SIZE * 2n - 1n, Uint8Array.of(7));
    const out = new Uint8Array(2);
    expect(rw(IOVA + PAGE_SIZE * 2n - 1n, out, false)).toBe(err('ENOENT'));
    expect(out).toEqual(Uint8Array.of(7, 0));
  });

  it('answers EFAULT when the user memory behind an unpinned page is gone', () => {
    const { f, driver } = setup(2n);
    expect(f.proc.munmap(f.buffer, PAGE_SIZE)).toBe(0);
    expect(syscall(() => (f.iommufd.accessRw(driver.access, IOVA, new Uint8Array(1), false), 0))).toBe(err('EFAULT'));
  });
});
