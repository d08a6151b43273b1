import { describe, expect, it } from 'vitest';
import {
  IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_CHANGE_PROCESS, IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_UNMAP, MOCK_APERTURE_LAST, MOCK_APERTURE_START, iommu_destroy,
  iommu_ioas_alloc, iommu_ioas_allow_iovas, iommu_ioas_change_process, iommu_ioas_copy, iommu_ioas_iova_ranges,
  iommu_ioas_map, iommu_ioas_map_file, iommu_ioas_unmap, iommu_iova_range, type IommufdIoas,
} from '@vfiosim/core';
import { BUFFER_SIZE, err, IommufdFixture, PAGE_SIZE, readOnlyCopy, RW } from './fixture.js';

const U64_MAX = (1n << 64n) - 1n;

function unmap(f: IommufdFixture, ioas: number, iova: bigint, length: bigint): { rc: number; length: bigint } {
  const { rc, out } = f.ioctl(IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { ioas_id: ioas, iova, length });
  return { rc, length: out.length };
}

function iopt(f: IommufdFixture, ioas: number) {
  return f.ictx.objects.get<IommufdIoas>(ioas, 'ioas').iopt;
}

function areas(f: IommufdFixture, ioas: number): [bigint, bigint][] {
  return iopt(f, ioas).areas.map((a) => [a.start, a.last]);
}

/** An IOAS with a mock device attached, so mappings are pinned and sit in a domain. */
function withDomain(f: IommufdFixture, flags = 0): number {
  const ioas = f.ioasAlloc();
  const { idev } = f.bindDevice(flags);
  f.iommufd.deviceAttach(idev, null, ioas);
  return ioas;
}

describe('IOMMU_IOAS_ALLOC and IOMMU_DESTROY of an IOAS', () => {
  it('refuses flags with EOPNOTSUPP and allocates nothing', () => {
    const f = new IommufdFixture();
    expect(f.ioctl(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { flags: 1 }).rc).toBe(err('EOPNOTSUPP'));
    expect(f.ictx.objects.empty).toBe(true);
  });

  it('frees the new id when out_ioas_id cannot be written back (EFAULT)', () => {
    const f = new IommufdFixture();
    const ro = readOnlyCopy(f, iommu_ioas_alloc.encodeNew({ size: 12 }));
    expect(f.proc.ioctl(f.fd, IOMMU_IOAS_ALLOC, ro)).toBe(err('EFAULT'));
    expect(f.ictx.objects.empty).toBe(true);
    expect(f.ioasAlloc()).toBe(1);
  });

  it('destroys an IOAS with areas when no device uses it (ioas_area_destroy)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.map(ioas, f.buffer, PAGE_SIZE, 0x10000n).rc).toBe(0);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: ioas }).rc).toBe(0);
  });

  it("keeps an IOAS a device's HWPT uses (EBUSY) with its areas intact", () => {
    const f = new IommufdFixture();
    const ioas = withDomain(f);
    expect(f.map(ioas, f.buffer, PAGE_SIZE, MOCK_APERTURE_START).rc).toBe(0);
    expect(f.ioctl(IOMMU_DESTROY, iommu_destroy, { id: ioas }).rc).toBe(err('EBUSY'));
    expect(areas(f, ioas)).toEqual([[MOCK_APERTURE_START, MOCK_APERTURE_START + PAGE_SIZE - 1n]]);
  });

  it('unpins every page when the file is released', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const { idev } = f.bindDevice();
    f.iommufd.deviceAttach(idev, null, ioas);
    expect(f.map(ioas, f.buffer, BUFFER_SIZE, MOCK_APERTURE_START).rc).toBe(0);
    expect(f.system.physMem.pinnedFrames).toBe(16);
    f.iommufd.deviceDetach(idev, null);
    expect(f.system.physMem.pinnedFrames).toBe(0);
    f.iommufd.deviceAttach(idev, null, ioas);
    expect(f.system.physMem.pinnedFrames).toBe(16);
    f.iommufd.deviceDetach(idev, null);
    f.iommufd.deviceUnbind(idev);
    expect(f.proc.close(f.fd)).toBe(0);
    expect(f.system.physMem.pinnedFrames).toBe(0);
  });
});

describe('IOMMU_IOAS_MAP', () => {
  it('rejects unknown flags and a non-zero __reserved with EOPNOTSUPP', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const base = { ioas_id: ioas, user_va: f.buffer, length: PAGE_SIZE };
    expect(f.ioctl(IOMMU_IOAS_MAP, iommu_ioas_map, { ...base, flags: RW | 8 }).rc).toBe(err('EOPNOTSUPP'));
    expect(f.ioctl(IOMMU_IOAS_MAP, iommu_ioas_map, { ...base, flags: RW, __reserved: 1 }).rc).toBe(err('EOPNOTSUPP'));
    expect(areas(f, ioas)).toEqual([]);
  });

  it('rejects an iova or length of ULONG_MAX with EOVERFLOW, and a mapping with no access with EINVAL', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.map(ioas, f.buffer, U64_MAX, 0n).rc).toBe(err('EOVERFLOW'));
    expect(f.map(ioas, f.buffer, PAGE_SIZE, U64_MAX).rc).toBe(err('EOVERFLOW'));
    expect(f.map(ioas, f.buffer, PAGE_SIZE, 0x10000n, 0).rc).toBe(err('EINVAL'));
    expect(f.map(ioas + 1, f.buffer, PAGE_SIZE, 0x10000n).rc).toBe(err('ENOENT'));
    expect(areas(f, ioas)).toEqual([]);
  });

  it('rejects a zero length with EINVAL and a user range that wraps with EOVERFLOW', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.map(ioas, f.buffer, 0n, 0x10000n).rc).toBe(err('EINVAL'));
    expect(f.map(ioas, U64_MAX - PAGE_SIZE + 2n, PAGE_SIZE, 0x10000n).rc).toBe(err('EOVERFLOW'));
    expect(f.map(ioas, f.buffer, PAGE_SIZE, U64_MAX - PAGE_SIZE + 2n).rc).toBe(err('EOVERFLOW'));
    expect(areas(f, ioas)).toEqual([]);
  });

  it('refuses a mapping over an existing one with EEXIST, whichever way it overlaps (area)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const base = 0x100000n;
    expect(f.map(ioas, f.buffer, PAGE_SIZE * 2n, base + 16n * PAGE_SIZE).rc).toBe(0);
    for (const [length, at] of [[2n, 16n], [1n, 16n], [1n, 17n], [2n, 15n], [3n, 15n]] as const) {
      expect(f.map(ioas, f.buffer, PAGE_SIZE * length, base + at * PAGE_SIZE).rc).toBe(err('EEXIST'));
    }
    expect(areas(f, ioas)).toEqual([[base + 16n * PAGE_SIZE, base + 18n * PAGE_SIZE - 1n]]);
  });

  it('maps lazily without a domain: an unmapped user address is accepted until a domain needs the pages', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const hole = f.buffer + BUFFER_SIZE + PAGE_SIZE * 1024n;
    expect(f.map(ioas, hole, PAGE_SIZE, MOCK_APERTURE_START).rc).toBe(0);
    const { dev, groupId, idev } = f.bindDevice();
    expect(() => f.iommufd.deviceAttach(idev, null, ioas)).toThrow(/EFAULT/);
    expect(f.core.group(groupId)!.domain).toBe(f.mock.blockedDomain);
    expect(f.ictx.objects.live().map((o) => o.type)).toEqual(['ioas', 'device']);
    expect(dev.name).toMatch(/mock/);
  });

  it('pins at map time with a domain, and an unmapped user address is EFAULT with nothing left behind', () => {
    const f = new IommufdFixture();
    const ioas = withDomain(f);
    const hole = f.buffer + BUFFER_SIZE + PAGE_SIZE * 1024n;
    expect(f.map(ioas, hole, PAGE_SIZE, MOCK_APERTURE_START).rc).toBe(err('EFAULT'));
    expect(areas(f, ioas)).toEqual([]);
    expect(f.system.physMem.pinnedFrames).toBe(0);
    expect(f.map(ioas, f.buffer, PAGE_SIZE * 2n, MOCK_APERTURE_START).rc).toBe(0);
    expect(f.system.physMem.pinnedFrames).toBe(2);
  });

  it('needs the IOAS alignment and stays out of reserved IOVA (EINVAL) once a domain is attached', () => {
    const f = new IommufdFixture();
    const ioas = withDomain(f);
    expect(f.map(ioas, f.buffer, PAGE_SIZE, MOCK_APERTURE_START + 0x800n).rc).toBe(err('EINVAL'));
    expect(f.map(ioas, f.buffer, PAGE_SIZE / 2n, MOCK_APERTURE_START).rc).toBe(err('EINVAL'));
    expect(f.map(ioas, f.buffer, PAGE_SIZE, 0x1000n).rc).toBe(err('EINVAL'));
    expect(f.map(ioas, f.buffer, PAGE_SIZE, MOCK_APERTURE_LAST + 1n).rc).toBe(err('EINVAL'));
    expect(areas(f, ioas)).toEqual([]);
  });

  it('maps a read-only user page only without WRITEABLE (EFAULT otherwise)', () => {
    const f = new IommufdFixture();
    const ioas = withDomain(f);
    const ro = readOnlyCopy(f, new Uint8Array([1]));
    expect(f.map(ioas, ro, PAGE_SIZE, MOCK_APERTURE_START).rc).toBe(err('EFAULT'));
    expect(f.map(ioas, ro, PAGE_SIZE, MOCK_APERTURE_START, IOMMU_IOAS_MAP_READABLE).rc).toBe(0);
  });

  it('chooses IOVAs aligned to the length and keeps the user page offset (area_auto_iova, ioas_iova_alloc)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const chosen: bigint[] = [];
    for (let i = 1n; i <= 10n; i++) {
      const { rc, iova } = f.map(ioas, 1n << 31n, PAGE_SIZE * i, null);
      expect(rc).toBe(0);
      const natural = (PAGE_SIZE * i) & -(PAGE_SIZE * i);
      expect(iova % natural).toBe(0n);
      expect(iova).toBeGreaterThanOrEqual(PAGE_SIZE);
      chosen.push(iova);
    }
    for (let length = 1n; length < 2n * PAGE_SIZE; length += 511n) {
      const { rc, iova } = f.map(ioas, f.buffer + 0x123n, length, null);
      expect(rc).toBe(0);
      expect(iova % PAGE_SIZE).toBe(0x123n);
      expect(unmap(f, ioas, iova, length)).toEqual({ rc: 0, length });
    }
    expect(new Set(chosen).size).toBe(10);
  });

  it('refuses automatic lengths the domain cannot map (ioas_iova_alloc with a domain)', () => {
    const f = new IommufdFixture();
    const ioas = withDomain(f);
    expect(f.map(ioas, f.buffer, PAGE_SIZE + 1n, null).rc).toBe(err('EINVAL'));
    const { rc, iova } = f.map(ioas, f.buffer, PAGE_SIZE * 2n, null);
    expect(rc).toBe(0);
    expect(iova).toBeGreaterThanOrEqual(MOCK_APERTURE_START);
    expect(iova + PAGE_SIZE * 2n - 1n).toBeLessThanOrEqual(MOCK_APERTURE_LAST);
  });

  it('answers ENOSPC when no allowed range can hold the mapping', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const list = f.scratch + 0x1000n;
    f.proc.mm.copyToUser(list, iommu_iova_range.encodeNew({ start: 0x10000n, last: 0x10fffn }));
    expect(f.ioctl(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, { ioas_id: ioas, num_iovas: 1, allowed_iovas: list }).rc).toBe(0);
    expect(f.map(ioas, f.buffer, PAGE_SIZE * 2n, null).rc).toBe(err('ENOSPC'));
    expect(f.map(ioas, f.buffer, PAGE_SIZE, null)).toEqual({ rc: 0, iova: 0x10000n });
  });

  it('leaves the mapping in place when the chosen IOVA cannot be written back (EFAULT)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const arg = iommu_ioas_map.encodeNew({ size: 40, flags: RW, ioas_id: ioas, user_va: f.buffer, length: PAGE_SIZE });
    expect(f.proc.ioctl(f.fd, IOMMU_IOAS_MAP, readOnlyCopy(f, arg))).toBe(err('EFAULT'));
    expect(areas(f, ioas)).toHaveLength(1);
  });
});

describe('IOMMU_IOAS_UNMAP', () => {
  it('fails with ENOENT on nothing mapped, unmaps whole areas and reports the length (area)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const base = 0x100000n;
    for (let i = 0n; i < 10n; i++) expect(unmap(f, ioas, i * PAGE_SIZE, PAGE_SIZE).rc).toBe(err('ENOENT'));
    for (let i = 0n; i < 10n; i++) expect(f.map(ioas, f.buffer, PAGE_SIZE, base + i * PAGE_SIZE).rc).toBe(0);
    for (let i = 0n; i < 10n; i++) expect(unmap(f, ioas, base + i * PAGE_SIZE, PAGE_SIZE)).toEqual({ rc: 0, length: PAGE_SIZE });
  });

  it('does not split an area (ENOENT) and unmaps everything with iova 0 and length U64_MAX, also when empty', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const base = 0x100000n + 16n * PAGE_SIZE;
    expect(f.map(ioas, f.buffer, PAGE_SIZE * 2n, base).rc).toBe(0);
    expect(unmap(f, ioas, base, PAGE_SIZE).rc).toBe(err('ENOENT'));
    expect(unmap(f, ioas, base + PAGE_SIZE, PAGE_SIZE).rc).toBe(err('ENOENT'));
    expect(areas(f, ioas)).toEqual([[base, base + 2n * PAGE_SIZE - 1n]]);
    expect(unmap(f, ioas, 0n, U64_MAX)).toEqual({ rc: 0, length: PAGE_SIZE * 2n });
    expect(unmap(f, ioas, 0n, U64_MAX)).toEqual({ rc: 0, length: 0n });
  });

  it('unmaps every area a range fully contains (unmap_fully_contained_areas)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const base = 0x100000n + 4n * PAGE_SIZE;
    for (let i = 0n; i < 4n; i++) expect(f.map(ioas, f.buffer, 8n * PAGE_SIZE, base + i * 16n * PAGE_SIZE).rc).toBe(0);
    expect(unmap(f, ioas, base - 4n * PAGE_SIZE, 8n * PAGE_SIZE).rc).toBe(err('ENOENT'));
    expect(unmap(f, ioas, base + 3n * 16n * PAGE_SIZE + 4n * PAGE_SIZE, 8n * PAGE_SIZE).rc).toBe(err('ENOENT'));
    expect(areas(f, ioas)).toHaveLength(4);
    expect(unmap(f, ioas, base - 4n * PAGE_SIZE, 3n * 16n * PAGE_SIZE + 12n * PAGE_SIZE)).toEqual({ rc: 0, length: 32n * PAGE_SIZE });
  });

  it('keeps the areas it removed before meeting one that sticks out, as the kernel does', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const base = 0x100000n;
    expect(f.map(ioas, f.buffer, PAGE_SIZE, base).rc).toBe(0);
    expect(f.map(ioas, f.buffer, PAGE_SIZE * 2n, base + PAGE_SIZE).rc).toBe(0);
    const { rc, length } = unmap(f, ioas, base, PAGE_SIZE * 2n);
    expect(rc).toBe(err('ENOENT'));
    expect(length).toBe(PAGE_SIZE * 2n);
    expect(areas(f, ioas)).toEqual([[base + PAGE_SIZE, base + 3n * PAGE_SIZE - 1n]]);
  });

  it('rejects an iova or length of ULONG_MAX (EOVERFLOW), a zero length (EINVAL) and a wrapping range (EOVERFLOW)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(unmap(f, ioas, 1n, U64_MAX).rc).toBe(err('EOVERFLOW'));
    expect(unmap(f, ioas, U64_MAX, 1n).rc).toBe(err('EOVERFLOW'));
    expect(unmap(f, ioas, 0x1000n, 0n).rc).toBe(err('EINVAL'));
    expect(unmap(f, ioas, U64_MAX - 1n, 3n).rc).toBe(err('EOVERFLOW'));
    expect(unmap(f, ioas + 5, 0n, U64_MAX).rc).toBe(err('ENOENT'));
  });

  it('unpins exactly the pages no remaining area holds', () => {
    const f = new IommufdFixture();
    const ioas = withDomain(f);
    expect(f.map(ioas, f.buffer, PAGE_SIZE * 4n, MOCK_APERTURE_START).rc).toBe(0);
    expect(f.map(ioas, f.buffer + PAGE_SIZE * 2n, PAGE_SIZE * 4n, MOCK_APERTURE_START + 0x100000n).rc).toBe(0);
    expect(f.system.physMem.pinnedFrames).toBe(6);
    expect(unmap(f, ioas, MOCK_APERTURE_START, PAGE_SIZE * 4n).rc).toBe(0);
    expect(f.system.physMem.pinnedFrames).toBe(4);
    expect(unmap(f, ioas, 0n, U64_MAX).rc).toBe(0);
    expect(f.system.physMem.pinnedFrames).toBe(0);
  });
});

describe('IOMMU_IOAS_IOVA_RANGES', () => {
  function query(f: IommufdFixture, ioas: number, num: number) {
    const at = f.scratch + 0x1000n;
    f.proc.mm.copyToUser(at, new Uint8Array(64));
    const result = f.ioctl(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: ioas, num_iovas: num, allowed_iovas: at });
    const bytes = f.proc.mm.copyFromUser(at, 64);
    return { ...result, list: [0, 16, 32].map((o) => iommu_iova_range.decode(bytes, o)) };
  }

  it('reports all of IOVA space with alignment 1 without a domain, the aperture with one', () => {
    const f = new IommufdFixture();
    const plain = f.ioasAlloc();
    const a = query(f, plain, 4);
    expect([a.rc, a.out.num_iovas, a.out.out_iova_alignment]).toEqual([0, 1, 1n]);
    expect(a.list[0]).toEqual({ start: 0n, last: U64_MAX });
    const ioas = withDomain(f);
    const b = query(f, ioas, 4);
    expect([b.rc, b.out.num_iovas, b.out.out_iova_alignment]).toEqual([0, 1, PAGE_SIZE]);
    expect(b.list[0]).toEqual({ start: MOCK_APERTURE_START, last: MOCK_APERTURE_LAST });
  });

  it('answers EMSGSIZE with the full count written back when the array is too small', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const r = query(f, ioas, 0);
    expect([r.rc, r.out.num_iovas]).toEqual([err('EMSGSIZE'), 1]);
    expect(r.list[0]).toEqual({ start: 0n, last: 0n });
  });

  it('rejects a non-zero __reserved (EOPNOTSUPP) and a bad array pointer (EFAULT)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.ioctl(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: ioas, __reserved: 1 }).rc).toBe(err('EOPNOTSUPP'));
    expect(f.ioctl(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: ioas, num_iovas: 1, allowed_iovas: 8n }).rc).toBe(err('EFAULT'));
  });
});

describe('IOMMU_IOAS_ALLOW_IOVAS', () => {
  function allow(f: IommufdFixture, ioas: number, list: readonly { start: bigint; last: bigint }[]): number {
    const at = f.scratch + 0x1000n;
    list.forEach((range, i) => f.proc.mm.copyToUser(at + BigInt(i * 16), iommu_iova_range.encodeNew(range)));
    return f.ioctl(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, { ioas_id: ioas, num_iovas: list.length, allowed_iovas: at }).rc;
  }

  it('rejects empty or reversed ranges and overlapping ones with EINVAL, keeping the old list', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const good = { start: 0x100000n, last: 0x1fffffn };
    expect(allow(f, ioas, [good])).toBe(0);
    expect(allow(f, ioas, [{ start: 0x5000n, last: 0x5000n }])).toBe(err('EINVAL'));
    expect(allow(f, ioas, [{ start: 0x6000n, last: 0x5000n }])).toBe(err('EINVAL'));
    expect(allow(f, ioas, [{ start: 0x1000n, last: 0x3fffn }, { start: 0x3000n, last: 0x8fffn }])).toBe(err('EINVAL'));
    expect(iopt(f, ioas).allowed).toEqual([good]);
  });

  it('refuses a range crossing reserved IOVA with EADDRINUSE and restricts automatic IOVAs to the allowed ranges', () => {
    const f = new IommufdFixture();
    const ioas = withDomain(f);
    expect(allow(f, ioas, [{ start: PAGE_SIZE, last: PAGE_SIZE * 600n }])).toBe(err('EADDRINUSE'));
    expect(iopt(f, ioas).allowed).toEqual([]);
    const start = MOCK_APERTURE_START + PAGE_SIZE;
    const last = MOCK_APERTURE_START + PAGE_SIZE * 600n - 1n;
    expect(allow(f, ioas, [{ start, last }])).toBe(0);
    for (let i = 1n; i <= 10n; i++) {
      const { rc, iova } = f.map(ioas, f.buffer, PAGE_SIZE * i, null);
      expect(rc).toBe(0);
      expect(iova).toBeGreaterThanOrEqual(start);
      expect(iova + PAGE_SIZE * i - 1n).toBeLessThanOrEqual(last);
    }
  });

  it('reads the array through user memory (EFAULT for a bad pointer) and lets a fixed mapping ignore the list', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.ioctl(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, { ioas_id: ioas, num_iovas: 1, allowed_iovas: 8n }).rc).toBe(err('EFAULT'));
    expect(f.ioctl(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, { ioas_id: ioas, __reserved: 1 }).rc).toBe(err('EOPNOTSUPP'));
    expect(allow(f, ioas, [{ start: 0x100000n, last: 0x1fffffn }])).toBe(0);
    expect(f.map(ioas, f.buffer, PAGE_SIZE, 0x4000000n).rc).toBe(0);
  });

  it('keeps a device whose reserved region would cross an allowed range from attaching (EADDRINUSE)', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(allow(f, ioas, [{ start: 0x1000n, last: 0x2fffn }])).toBe(0);
    const { idev } = f.bindDevice();
    expect(() => f.iommufd.deviceAttach(idev, null, ioas)).toThrow(/EADDRINUSE/);
    expect(iopt(f, ioas).reserved).toEqual([]);
    expect(iopt(f, ioas).domains).toEqual([]);
  });
});

describe('IOMMU_IOAS_COPY', () => {
  function copy(f: IommufdFixture, args: Partial<import('@vfiosim/core').iommu_ioas_copy>) {
    return f.ioctl(IOMMU_IOAS_COPY, iommu_ioas_copy, { flags: IOMMU_IOAS_MAP_FIXED_IOVA | RW, length: PAGE_SIZE, ...args });
  }

  it('copies inside one IOAS and into another without pinning again (copy_area)', () => {
    const f = new IommufdFixture();
    const ioas = withDomain(f);
    expect(f.map(ioas, f.buffer, PAGE_SIZE, MOCK_APERTURE_START).rc).toBe(0);
    expect(copy(f, { src_ioas_id: ioas, dst_ioas_id: ioas, src_iova: MOCK_APERTURE_START, dst_iova: MOCK_APERTURE_START + PAGE_SIZE }).rc).toBe(0);
    const other = withDomain(f);
    const { rc, out } = copy(f, { src_ioas_id: ioas, dst_ioas_id: other, src_iova: MOCK_APERTURE_START, dst_iova: 0n, flags: RW });
    expect(rc).toBe(0);
    expect(out.dst_iova).toBeGreaterThanOrEqual(MOCK_APERTURE_START);
    expect(f.system.physMem.pinnedFrames).toBe(1);
    expect(areas(f, ioas)).toHaveLength(2);
  });

  it('answers ENOENT unless the source range is mapped end to end (copy_sweep)', () => {
    const f = new IommufdFixture();
    const src = f.ioasAlloc();
    const dst = f.ioasAlloc();
    expect(f.map(src, f.buffer, PAGE_SIZE * 2n, 0x100000n).rc).toBe(0);
    expect(copy(f, { src_ioas_id: src, dst_ioas_id: dst, src_iova: 0x100000n - PAGE_SIZE, dst_iova: 0x100000n }).rc).toBe(err('ENOENT'));
    expect(copy(f, { src_ioas_id: src, dst_ioas_id: dst, src_iova: 0x101001n, length: PAGE_SIZE * 2n, dst_iova: 0x100000n }).rc).toBe(err('ENOENT'));
    expect(copy(f, { src_ioas_id: src, dst_ioas_id: dst, src_iova: 0x100800n, dst_iova: 0x100800n }).rc).toBe(0);
    expect(areas(f, dst)).toEqual([[0x100800n, 0x1017ffn]]);
  });

  it('refuses a writeable copy of a read-only mapping with EPERM', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.map(ioas, f.buffer, PAGE_SIZE, 0x100000n, IOMMU_IOAS_MAP_READABLE).rc).toBe(0);
    expect(copy(f, { src_ioas_id: ioas, dst_ioas_id: ioas, src_iova: 0x100000n, dst_iova: 0x200000n }).rc).toBe(err('EPERM'));
    expect(copy(f, { src_ioas_id: ioas, dst_ioas_id: ioas, src_iova: 0x100000n, dst_iova: 0x200000n, flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE }).rc).toBe(0);
  });

  it('checks flags, sizes and both ids in the kernel order', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(copy(f, { flags: 0x10, src_ioas_id: ioas, dst_ioas_id: ioas }).rc).toBe(err('EOPNOTSUPP'));
    expect(copy(f, { src_ioas_id: ioas, dst_ioas_id: ioas, src_iova: U64_MAX }).rc).toBe(err('EOVERFLOW'));
    expect(copy(f, { flags: IOMMU_IOAS_MAP_FIXED_IOVA, src_ioas_id: ioas, dst_ioas_id: ioas }).rc).toBe(err('EINVAL'));
    expect(copy(f, { src_ioas_id: 77, dst_ioas_id: ioas }).rc).toBe(err('ENOENT'));
    expect(copy(f, { src_ioas_id: ioas, dst_ioas_id: ioas, length: 0n }).rc).toBe(err('EINVAL'));
    expect(f.map(ioas, f.buffer, PAGE_SIZE, 0x100000n).rc).toBe(0);
    expect(copy(f, { src_ioas_id: ioas, dst_ioas_id: 77, src_iova: 0x100000n }).rc).toBe(err('ENOENT'));
    expect(copy(f, { src_ioas_id: ioas, dst_ioas_id: ioas, src_iova: 0x100000n, dst_iova: 0x100000n }).rc).toBe(err('EEXIST'));
  });
});

describe('IOMMU_IOAS_MAP_FILE', () => {
  function memfd(f: IommufdFixture, size: bigint): number {
    const fd = f.proc.memfdCreate('guest-ram');
    expect(f.proc.ftruncate(fd, size)).toBe(0);
    return fd;
  }

  function mapFile(f: IommufdFixture, args: Partial<import('@vfiosim/core').iommu_ioas_map_file>) {
    return f.ioctl(IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file, { flags: RW | IOMMU_IOAS_MAP_FIXED_IOVA, length: PAGE_SIZE, ...args });
  }

  it('maps a memfd range and pins its pages once a domain needs them', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    const fd = memfd(f, PAGE_SIZE * 4n);
    expect(mapFile(f, { ioas_id: ioas, fd, start: PAGE_SIZE, length: PAGE_SIZE * 2n, iova: MOCK_APERTURE_START }).rc).toBe(0);
    expect(f.system.physMem.pinnedFrames).toBe(0);
    const { idev } = f.bindDevice();
    f.iommufd.deviceAttach(idev, null, ioas);
    expect(f.system.physMem.pinnedFrames).toBe(2);
    expect(f.proc.close(fd)).toBe(0);
    expect(f.system.physMem.pinnedFrames).toBe(2);
  });

  it('checks the fd (EBADF), the length (EINVAL) and wrapping (EOVERFLOW) after the IOAS', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(mapFile(f, { ioas_id: ioas + 1, fd: 99 }).rc).toBe(err('ENOENT'));
    expect(mapFile(f, { ioas_id: ioas, fd: 99 }).rc).toBe(err('EBADF'));
    expect(mapFile(f, { ioas_id: ioas, fd: 99, length: 0n }).rc).toBe(err('EINVAL'));
    expect(mapFile(f, { ioas_id: ioas, fd: 99, start: U64_MAX }).rc).toBe(err('EOVERFLOW'));
    expect(mapFile(f, { ioas_id: ioas, fd: 99, flags: 0x10 }).rc).toBe(err('EOPNOTSUPP'));
    expect(areas(f, ioas)).toEqual([]);
  });

  it('accepts a file that cannot be pinned until a domain tries, then answers EINVAL', () => {
    const f = new IommufdFixture();
    const ioas = withDomain(f);
    const fd = memfd(f, PAGE_SIZE);
    expect(mapFile(f, { ioas_id: ioas, fd, start: PAGE_SIZE, iova: MOCK_APERTURE_START }).rc).toBe(err('EINVAL'));
    expect(mapFile(f, { ioas_id: ioas, fd: f.fd, iova: MOCK_APERTURE_START }).rc).toBe(err('EINVAL'));
    expect(areas(f, ioas)).toEqual([]);
  });
});

describe('IOMMU_IOAS_CHANGE_PROCESS', () => {
  it('refuses while any IOAS maps user memory (EINVAL) and succeeds with only file mappings', () => {
    const f = new IommufdFixture();
    const ioas = f.ioasAlloc();
    expect(f.ioctl(IOMMU_IOAS_CHANGE_PROCESS, iommu_ioas_change_process, {}).rc).toBe(0);
    expect(f.map(ioas, f.buffer, PAGE_SIZE, 0x100000n).rc).toBe(0);
    expect(f.ioctl(IOMMU_IOAS_CHANGE_PROCESS, iommu_ioas_change_process, {}).rc).toBe(err('EINVAL'));
    expect(f.ioctl(IOMMU_IOAS_CHANGE_PROCESS, iommu_ioas_change_process, { __reserved: 1 }).rc).toBe(err('EOPNOTSUPP'));
    const fd = f.proc.memfdCreate('ram');
    f.proc.ftruncate(fd, PAGE_SIZE);
    expect(unmap(f, ioas, 0n, U64_MAX).rc).toBe(0);
    const { rc } = f.ioctl(IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file, { flags: RW, ioas_id: ioas, fd, length: PAGE_SIZE });
    expect(rc).toBe(0);
    expect(f.ioctl(IOMMU_IOAS_CHANGE_PROCESS, iommu_ioas_change_process, {}).rc).toBe(0);
  });
});
