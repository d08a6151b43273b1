import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_OPTION, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_VFIO_IOAS, IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_SET, MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_FLAGS_DEVICE_HUGE_IOVA,
  VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_GET_API_VERSION,
  VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, VFIO_IOMMU_UNMAP_DMA, VFIO_NOIOMMU_IOMMU,
  VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR, iommu_destroy,
  iommu_option, iommu_vfio_ioas, vfio_info_cap_header, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range, vfio_iommu_type1_info_dma_avail, vfio_iova_range,
  type IommufdIoas, type StructCodec,
} from '@vfiosim/core';
import { BUFFER_SIZE, err, IommufdFixture, PAGE_SIZE, readOnlyCopy } from './fixture.js';

const HPAGE_SIZE = 2n * 1024n * 1024n;
const RW_DMA = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

/** A VFIO-style ioctl: the struct with `argsz` (default its size) at scratch, the struct read back. */
function vioctl<T>(f: IommufdFixture, request: number, codec: StructCodec<T>, value: Partial<T>, argsz = codec.size) {
  const bytes = codec.encodeNew({ argsz, ...value } as never);
  f.proc.mm.copyToUser(f.scratch, bytes);
  const rc = f.proc.ioctl(f.fd, request, f.scratch);
  return { rc, out: codec.decode(f.proc.mm.copyFromUser(f.scratch, codec.size)) };
}

function mapDma(f: IommufdFixture, vaddr: bigint, iova: bigint, size: bigint, flags = RW_DMA): number {
  return vioctl(f, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags, vaddr, iova, size }).rc;
}

function unmapDma(f: IommufdFixture, iova: bigint, size: bigint, flags = 0) {
  const { rc, out } = vioctl(f, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { flags, iova, size });
  return { rc, size: out.size };
}

function compatIoas(f: IommufdFixture): IommufdIoas {
  return f.ictx.vfioIoas!;
}

function areas(f: IommufdFixture): [bigint, bigint][] {
  return compatIoas(f).iopt.areas.map((a) => [a.start, a.last]);
}

/**
 * FIXTURE_SETUP(vfio_compat_mock_domain): an IOAS with a mock device
 * ("what VFIO would consider a group"), made the compat IOAS with
 * IOMMU_VFIO_IOAS_SET, then VFIO_SET_IOMMU with `version`.
 */
function compatMockDomain(version: number | null, deviceFlags = 0): { f: IommufdFixture; ioas: number } {
  const f = new IommufdFixture();
  const ioas = f.ioasAlloc();
  const { idev } = f.bindDevice(deviceFlags);
  f.iommufd.deviceAttach(idev, null, ioas);
  expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas }).rc).toBe(0);
  if (version !== null) expect(f.proc.ioctl(f.fd, VFIO_SET_IOMMU, BigInt(version))).toBe(0);
  return { f, ioas };
}

describe('IOMMU_VFIO_IOAS', () => {
  it('GET is ENODEV until a compat IOAS exists, and SET/GET/CLEAR move it', () => {
    const f = new IommufdFixture();
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET }).rc).toBe(err('ENODEV'));
    const a = f.ioasAlloc();
    const b = f.ioasAlloc();
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: b }).rc).toBe(0);
    const got = f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET, ioas_id: a });
    expect(got.rc).toBe(0);
    expect(got.out.ioas_id).toBe(b);
    // CLEAR ignores ioas_id.
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_CLEAR, ioas_id: 77 }).rc).toBe(0);
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET }).rc).toBe(err('ENODEV'));
  });

  it('SET of an unknown id or a non-IOAS object is ENOENT and keeps the current compat IOAS', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const { idev } = f.bindDevice();
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas }).rc).toBe(0);
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: 99 }).rc).toBe(err('ENOENT'));
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: idev.devId }).rc).toBe(err('ENOENT'));
    expect(f.ictx.vfioIoas?.id).toBe(ioas);
  });

  it('refuses an unknown op or a non-zero __reserved with EOPNOTSUPP', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: 3, ioas_id: ioas }).rc).toBe(err('EOPNOTSUPP'));
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas, __reserved: 1 }).rc)
      .toBe(err('EOPNOTSUPP'));
    expect(f.ictx.vfioIoas).toBeNull();
  });

  it('holds no reference: the compat IOAS can be destroyed, which clears it', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas }).rc).toBe(0);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: ioas }).rc).toBe(0);
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET }).rc).toBe(err('ENODEV'));
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE)).toBe(err('ENODEV'));
  });
});

describe('the compat IOAS as vfio creates it (iommufd_vfio_compat_ioas_create)', () => {
  it('creates a user-visible IOAS once and reuses it for the next group', () => {
    const f = new IommufdFixture();
    f.iommufd.vfioCompatIoasCreate(f.ictx);
    const id = f.iommufd.vfioCompatIoasGetId(f.ictx);
    expect(id).toBe(1);
    f.iommufd.vfioCompatIoasCreate(f.ictx);
    expect(f.iommufd.vfioCompatIoasGetId(f.ictx)).toBe(id);
    expect(f.ictx.objects.live().length).toBe(1);
    const got = f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET });
    expect(got.out.ioas_id).toBe(id);
  });

  it('reuses an IOAS chosen with IOMMU_VFIO_IOAS_SET before the first group', () => {
    const f = new IommufdFixture();
    f.ioasAlloc();
    const chosen = f.ioasAlloc();
    expect(f.ioctl(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: chosen }).rc).toBe(0);
    f.iommufd.vfioCompatIoasCreate(f.ictx);
    expect(f.iommufd.vfioCompatIoasGetId(f.ictx)).toBe(chosen);
    expect(f.ictx.objects.live().length).toBe(2);
  });

  it('makes no-IOMMU mode and an IOAS exclusive (EINVAL either way)', () => {
    const f = new IommufdFixture();
    f.iommufd.vfioCompatIoasCreate(f.ictx);
    expect(() => f.iommufd.vfioCompatSetNoIommu(f.ictx)).toThrow(/EINVAL/);

    const g = new IommufdFixture();
    g.iommufd.vfioCompatSetNoIommu(g.ictx);
    expect(() => g.iommufd.vfioCompatIoasCreate(g.ictx)).toThrow(/EINVAL/);
    expect(g.ictx.objects.empty).toBe(true);
    expect(() => g.iommufd.vfioCompatIoasGetId(g.ictx)).toThrow(/ENODEV/);
  });
});

describe('container ioctls on /dev/iommu', () => {
  it('VFIO_GET_API_VERSION answers VFIO_API_VERSION', () => {
    const f = new IommufdFixture();
    expect(f.proc.ioctl(f.fd, VFIO_GET_API_VERSION, 0n)).toBe(VFIO_API_VERSION);
  });

  it('VFIO_CHECK_EXTENSION: type1, v2, UNMAP_ALL and NOIOMMU yes; VADDR, unknown no; DMA_CC needs a compat IOAS', () => {
    const f = new IommufdFixture();
    const check = (ext: number) => f.proc.ioctl(f.fd, VFIO_CHECK_EXTENSION, BigInt(ext));
    expect(check(VFIO_TYPE1_IOMMU)).toBe(1);
    expect(check(VFIO_TYPE1v2_IOMMU)).toBe(1);
    expect(check(VFIO_UNMAP_ALL)).toBe(1);
    expect(check(VFIO_NOIOMMU_IOMMU)).toBe(1);
    expect(check(VFIO_UPDATE_VADDR)).toBe(0);
    expect(check(2)).toBe(0); // VFIO_TYPE1_NESTING_IOMMU, obsolete
    expect(check(0x1234)).toBe(0);
    expect(check(VFIO_DMA_CC_IOMMU)).toBe(err('ENODEV'));
    f.iommufd.vfioCompatIoasCreate(f.ictx);
    // No HWPT yet: the empty list enforces coherency vacuously.
    expect(check(VFIO_DMA_CC_IOMMU)).toBe(1);
  });

  it('VFIO_CHECK_EXTENSION of a no-IOMMU container answers no for the type1 family', () => {
    const f = new IommufdFixture();
    f.iommufd.vfioCompatSetNoIommu(f.ictx);
    expect(f.proc.ioctl(f.fd, VFIO_CHECK_EXTENSION, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(0);
    expect(f.proc.ioctl(f.fd, VFIO_CHECK_EXTENSION, BigInt(VFIO_UNMAP_ALL))).toBe(0);
    expect(f.proc.ioctl(f.fd, VFIO_CHECK_EXTENSION, BigInt(VFIO_NOIOMMU_IOMMU))).toBe(1);
    expect(f.proc.ioctl(f.fd, VFIO_SET_IOMMU, BigInt(VFIO_NOIOMMU_IOMMU))).toBe(0);
    expect(f.proc.ioctl(f.fd, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(err('EINVAL'));
  });

  it('VFIO_SET_IOMMU: EINVAL for other types, ENODEV without a group, NOIOMMU only in no-IOMMU mode', () => {
    const f = new IommufdFixture();
    expect(f.proc.ioctl(f.fd, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(err('ENODEV'));
    expect(f.proc.ioctl(f.fd, VFIO_SET_IOMMU, BigInt(VFIO_NOIOMMU_IOMMU))).toBe(err('EINVAL'));
    expect(f.proc.ioctl(f.fd, VFIO_SET_IOMMU, 5n)).toBe(err('EINVAL'));
    f.iommufd.vfioCompatIoasCreate(f.ictx);
    expect(f.proc.ioctl(f.fd, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1v2_IOMMU))).toBe(0);
    expect(compatIoas(f).iopt.largePagesDisabled).toBe(false);
  });

  it('VFIO_IOMMU_DIRTY_PAGES and other requests are ENOTTY', () => {
    const { f } = compatMockDomain(VFIO_TYPE1v2_IOMMU);
    expect(f.proc.ioctl(f.fd, VFIO_IOMMU_DIRTY_PAGES, f.scratch)).toBe(err('ENOTTY'));
    expect(f.proc.ioctl(f.fd, 0x1234, f.scratch)).toBe(err('ENOTTY'));
  });
});

for (const version of [VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU]) {
  const name = version === VFIO_TYPE1_IOMMU ? 'Ver1' : 'Ver1v2';

  describe(`vfio_compat_mock_domain (${name})`, () => {
    it('option_huge_pages: type1 turns huge pages off in the compat IOAS', () => {
      const { f, ioas } = compatMockDomain(version);
      const { rc, out } = f.ioctl(IOMMU_OPTION, iommu_option, {
        op: IOMMU_OPTION_OP_GET, option_id: IOMMU_OPTION_HUGE_PAGES, val64: 3n, object_id: ioas,
      });
      expect(rc).toBe(0);
      expect(out.val64).toBe(version === VFIO_TYPE1_IOMMU ? 0n : 1n);
    });

    it('simple_close: closing the container releases everything', () => {
      const { f } = compatMockDomain(version);
      expect(mapDma(f, f.buffer, MOCK_APERTURE_START, BUFFER_SIZE)).toBe(0);
      expect(f.proc.close(f.fd)).toBe(0);
    });

    it('map: map/unmap, UNMAP_FLAG_ALL rules, small pages unmapped one by one', () => {
      const { f } = compatMockDomain(version);
      expect(mapDma(f, f.buffer, MOCK_APERTURE_START, BUFFER_SIZE)).toBe(0);
      expect(unmapDma(f, MOCK_APERTURE_START, BUFFER_SIZE)).toEqual({ rc: 0, size: BUFFER_SIZE });

      expect(mapDma(f, f.buffer, MOCK_APERTURE_START, BUFFER_SIZE)).toBe(0);
      // UNMAP_FLAG_ALL needs iova and size 0; nothing is written back on that EINVAL.
      expect(unmapDma(f, MOCK_APERTURE_START, BUFFER_SIZE, VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: err('EINVAL'), size: BUFFER_SIZE });
      expect(areas(f)).toEqual([[MOCK_APERTURE_START, MOCK_APERTURE_START + BUFFER_SIZE - 1n]]);
      expect(unmapDma(f, 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ rc: 0, size: BUFFER_SIZE });

      const pages = Number(BUFFER_SIZE / PAGE_SIZE);
      for (let i = 0n; i < BigInt(pages); i++) {
        expect(mapDma(f, f.buffer + i * PAGE_SIZE, MOCK_APERTURE_START + i * PAGE_SIZE, PAGE_SIZE)).toBe(0);
      }
      const order = [7, 0, 15, 3, 12, 1, 9, 14, 2, 11, 5, 8, 13, 4, 10, 6];
      for (const i of order) {
        expect(unmapDma(f, MOCK_APERTURE_START + BigInt(i) * PAGE_SIZE, PAGE_SIZE)).toEqual({ rc: 0, size: PAGE_SIZE });
      }
      expect(areas(f)).toEqual([]);
    });

    it('huge_map: type1 can cut a huge-page mapping into pieces, type1v2 answers ENOENT', () => {
      const { f } = compatMockDomain(version, MOCK_FLAGS_DEVICE_HUGE_IOVA);
      const bufSize = HPAGE_SIZE * 2n;
      const buf = f.proc.mmap(bufSize + HPAGE_SIZE);
      const aligned = (buf + HPAGE_SIZE - 1n) & ~(HPAGE_SIZE - 1n);
      const iova = MOCK_APERTURE_START;
      expect(mapDma(f, aligned, iova, bufSize)).toBe(0);
      const piece = bufSize / 16n;
      const order = [3, 14, 0, 9, 6, 11, 1, 15, 8, 4, 13, 2, 10, 7, 12, 5];
      for (const i of order) {
        const r = unmapDma(f, iova + BigInt(i) * piece, piece);
        if (version === VFIO_TYPE1_IOMMU) expect(r).toEqual({ rc: 0, size: piece });
        else expect(r).toEqual({ rc: err('ENOENT'), size: 0n });
      }
      if (version === VFIO_TYPE1_IOMMU) expect(areas(f)).toEqual([]);
      else expect(areas(f)).toEqual([[iova, iova + bufSize - 1n]]);
    });

    it('get_info: pre-cap ABI, reading the chain size, and every short argsz gives a sound chain', () => {
      const { f } = compatMockDomain(version);
      // Pre-cap ABI: argsz 16 gets flags and page sizes, and the size needed.
      let r = vioctl(f, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { cap_offset: 0xdead, pad: 0xbeef }, 16);
      expect(r.rc).toBe(0);
      expect(r.out.iova_pgsizes).not.toBe(0n);
      expect(r.out.flags).toBe(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
      expect(r.out.cap_offset).toBe(0xdead); // beyond argsz: untouched

      r = vioctl(f, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {});
      expect(r.rc).toBe(0);
      expect(r.out.flags).toBe(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
      expect(r.out.cap_offset).toBe(0);
      const capLen = r.out.argsz;
      // DMA_AVAIL (12, aligned to 16) then IOVA_RANGE with the one aperture range (16 + 16).
      expect(capLen).toBe(vfio_iommu_type1_info.size + 16 + 16 + vfio_iova_range.size);

      for (let argsz = vfio_iommu_type1_info.size; argsz <= capLen; argsz++) {
        f.proc.mm.copyToUser(f.scratch, new Uint8Array(256));
        const got = vioctl(f, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {}, argsz);
        expect(got.rc).toBe(0);
        expect(got.out.flags).toBe(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
        expect(got.out.argsz).toBe(capLen);
        if (!got.out.cap_offset) continue;
        // check_vfio_info_cap_chain()
        const bytes = f.proc.mm.copyFromUser(f.scratch, capLen);
        let at = got.out.cap_offset;
        const seen: number[] = [];
        for (;;) {
          const cap = vfio_info_cap_header.decode(bytes.subarray(at, at + vfio_info_cap_header.size));
          expect(cap.next).toBeLessThanOrEqual(argsz);
          seen.push(cap.id);
          if (cap.id === VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
            const data = vfio_iommu_type1_info_cap_iova_range.decode(bytes.subarray(at));
            expect(data.header.version).toBe(1);
            expect(data.nr_iovas).toBe(1);
            const first = at + vfio_iommu_type1_info_cap_iova_range.size;
            expect(vfio_iova_range.decode(bytes.subarray(first, first + vfio_iova_range.size)))
              .toEqual({ start: MOCK_APERTURE_START, end: MOCK_APERTURE_LAST });
          } else {
            expect(cap.id).toBe(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
            const data = vfio_iommu_type1_info_dma_avail.decode(bytes.subarray(at));
            expect(data.header.version).toBe(1);
            expect(data.avail).toBe(0xffffffff);
          }
          if (!cap.next) break;
          expect(cap.next % 8).toBe(0);
          at = cap.next;
        }
        expect(seen).toEqual([VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE]);
      }
    });

    it('get_info writes each capability in place and leaves the padding after DMA_AVAIL as the user had it', () => {
      const { f } = compatMockDomain(version);
      const full = vfio_iommu_type1_info.size + 16 + 16 + vfio_iova_range.size;
      f.proc.mm.copyToUser(f.scratch, new Uint8Array(full).fill(0xaa));
      const got = vioctl(f, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {}, full);
      expect(got.rc).toBe(0);
      expect(got.out.cap_offset).toBe(vfio_iommu_type1_info.size);
      const bytes = f.proc.mm.copyFromUser(f.scratch, full);
      // DMA_AVAIL is 12 bytes; the kernel steps 16 to the next capability without writing the 4 between.
      const padding = vfio_iommu_type1_info.size + 12;
      expect([...bytes.subarray(padding, padding + 4)]).toEqual([0xaa, 0xaa, 0xaa, 0xaa]);
      expect(vfio_info_cap_header.decode(bytes.subarray(vfio_iommu_type1_info.size)).next).toBe(vfio_iommu_type1_info.size + 16);
    });
  });
}

describe('VFIO_IOMMU_MAP_DMA', () => {
  it('is EINVAL for a short argsz, unknown flags or VFIO_DMA_MAP_FLAG_VADDR, mapping nothing', () => {
    const { f } = compatMockDomain(VFIO_TYPE1v2_IOMMU);
    const args = { flags: RW_DMA, vaddr: f.buffer, iova: MOCK_APERTURE_START, size: PAGE_SIZE };
    expect(vioctl(f, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, args, vfio_iommu_type1_dma_map.size - 1).rc).toBe(err('EINVAL'));
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE, RW_DMA | VFIO_DMA_MAP_FLAG_VADDR)).toBe(err('EINVAL'));
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE, 1 << 7)).toBe(err('EINVAL'));
    expect(areas(f)).toEqual([]);
  });

  it('is EFAULT when the struct cannot be read', () => {
    const { f } = compatMockDomain(VFIO_TYPE1v2_IOMMU);
    expect(f.proc.ioctl(f.fd, VFIO_IOMMU_MAP_DMA, 0x10n)).toBe(err('EFAULT'));
  });

  it('accepts a mapping with neither READ nor WRITE, unlike type1', () => {
    const { f } = compatMockDomain(VFIO_TYPE1v2_IOMMU);
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE, 0)).toBe(0);
    expect(areas(f)).toEqual([[MOCK_APERTURE_START, MOCK_APERTURE_START + PAGE_SIZE - 1n]]);
  });

  it('follows the IOAS rules: overlap EEXIST, outside the aperture EINVAL, bad vaddr EFAULT', () => {
    const { f } = compatMockDomain(VFIO_TYPE1v2_IOMMU);
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE * 2n)).toBe(0);
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START + PAGE_SIZE, PAGE_SIZE)).toBe(err('EEXIST'));
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START - PAGE_SIZE, PAGE_SIZE)).toBe(err('EINVAL'));
    expect(mapDma(f, 0x10000n * PAGE_SIZE, MOCK_APERTURE_START + PAGE_SIZE * 8n, PAGE_SIZE)).toBe(err('EFAULT'));
    expect(areas(f)).toEqual([[MOCK_APERTURE_START, MOCK_APERTURE_START + PAGE_SIZE * 2n - 1n]]);
  });
});

describe('VFIO_IOMMU_UNMAP_DMA', () => {
  it('is EINVAL for the dirty-bitmap flag or unknown flags, and for a short argsz', () => {
    const { f } = compatMockDomain(VFIO_TYPE1v2_IOMMU);
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE)).toBe(0);
    expect(unmapDma(f, MOCK_APERTURE_START, PAGE_SIZE, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP).rc).toBe(err('EINVAL'));
    expect(unmapDma(f, MOCK_APERTURE_START, PAGE_SIZE, 1 << 5).rc).toBe(err('EINVAL'));
    const short = vioctl(f, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { iova: MOCK_APERTURE_START, size: PAGE_SIZE }, 23);
    expect(short.rc).toBe(err('EINVAL'));
    expect(areas(f).length).toBe(1);
  });

  it('is ENODEV without a compat IOAS', () => {
    const f = new IommufdFixture();
    expect(unmapDma(f, 0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL).rc).toBe(err('ENODEV'));
  });

  it('unmapping nothing succeeds with size 0 (type1 would too)', () => {
    const { f } = compatMockDomain(VFIO_TYPE1v2_IOMMU);
    expect(unmapDma(f, MOCK_APERTURE_START, PAGE_SIZE)).toEqual({ rc: 0, size: 0n });
  });

  it('writes back the bytes unmapped even when a later area sticks out (ENOENT)', () => {
    const { f } = compatMockDomain(VFIO_TYPE1v2_IOMMU);
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE)).toBe(0);
    expect(mapDma(f, f.buffer + PAGE_SIZE, MOCK_APERTURE_START + PAGE_SIZE, PAGE_SIZE * 2n)).toBe(0);
    expect(unmapDma(f, MOCK_APERTURE_START, PAGE_SIZE * 2n)).toEqual({ rc: err('ENOENT'), size: PAGE_SIZE });
    expect(areas(f)).toEqual([[MOCK_APERTURE_START + PAGE_SIZE, MOCK_APERTURE_START + PAGE_SIZE * 3n - 1n]]);
  });

  it('type1 punches a hole in the middle of a mapping; a misaligned cut is EINVAL with nothing written back', () => {
    const { f } = compatMockDomain(VFIO_TYPE1_IOMMU);
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE * 4n)).toBe(0);
    expect(unmapDma(f, MOCK_APERTURE_START + PAGE_SIZE, PAGE_SIZE)).toEqual({ rc: 0, size: PAGE_SIZE });
    expect(areas(f)).toEqual([
      [MOCK_APERTURE_START, MOCK_APERTURE_START + PAGE_SIZE - 1n],
      [MOCK_APERTURE_START + PAGE_SIZE * 2n, MOCK_APERTURE_START + PAGE_SIZE * 4n - 1n],
    ]);
    expect(unmapDma(f, MOCK_APERTURE_START + PAGE_SIZE * 2n + 8n, PAGE_SIZE)).toEqual({ rc: err('EINVAL'), size: PAGE_SIZE });
    expect(areas(f).length).toBe(2);
  });

  it('is EFAULT when the size cannot be written back, after the unmap happened', () => {
    const { f } = compatMockDomain(VFIO_TYPE1v2_IOMMU);
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE)).toBe(0);
    const ro = readOnlyCopy(f, vfio_iommu_type1_dma_unmap.encodeNew({ argsz: 24, iova: MOCK_APERTURE_START, size: PAGE_SIZE }));
    expect(f.proc.ioctl(f.fd, VFIO_IOMMU_UNMAP_DMA, ro)).toBe(err('EFAULT'));
    expect(areas(f)).toEqual([]);
  });
});

describe('VFIO_SET_IOMMU type1 after mappings exist', () => {
  it('cannot turn huge pages off once a domain holds mappings (EINVAL), so type1 stays v2-like', () => {
    const { f } = compatMockDomain(null);
    expect(mapDma(f, f.buffer, MOCK_APERTURE_START, PAGE_SIZE)).toBe(0);
    expect(f.proc.ioctl(f.fd, VFIO_SET_IOMMU, BigInt(VFIO_TYPE1_IOMMU))).toBe(err('EINVAL'));
    expect(compatIoas(f).iopt.largePagesDisabled).toBe(false);
  });
});
