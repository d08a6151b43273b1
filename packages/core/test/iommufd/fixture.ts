import {
  Errno, IOMMU_IOAS_ALLOC, IOMMU_IOAS_MAP, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
  IommuCore, Iommufd, System, createMockIommuDriver, iommu_ioas_alloc, iommu_ioas_map,
  type DeepPartial, type IommuClientDevice, type IommufdCtx, type IommufdDevice, type MockIommuDriver, type Process,
  type StructCodec,
} from '@vfiosim/core';

export const PAGE_SIZE = 4096n;
export const BUFFER_SIZE = PAGE_SIZE * 16n;
export const RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;

/** A bound mock device and its place in the IOMMU core. */
export interface MockDevice {
  readonly dev: IommuClientDevice;
  readonly groupId: number;
  readonly idev: IommufdDevice;
}

/**
 * The selftest's setup in one object: a host with the mock IOMMU driver,
 * the iommufd module, and a process that opened /dev/iommu and owns a
 * 16-page buffer plus a scratch page for ioctl arguments. Devices are
 * bound the way vfio binds them, through the IommufdKapi.
 */
export class IommufdFixture {
  readonly system = new System();
  readonly core = new IommuCore();
  readonly mock: MockIommuDriver;
  /** A second, separate mock IOMMU (another driver instance) whose domains the first one's devices cannot use. */
  readonly otherMock: MockIommuDriver;
  readonly iommufd: Iommufd;
  readonly proc: Process;
  readonly fd: number;
  /** Where ioctl argument structs are placed. */
  readonly scratch: bigint;
  /** The data buffer mappings come from (BUFFER_SIZE bytes). */
  readonly buffer: bigint;
  #nextGroup = 1;
  readonly #others: Set<IommuClientDevice>;

  constructor() {
    const others = new Set<IommuClientDevice>();
    this.otherMock = createMockIommuDriver({ physMem: this.system.physMem, name: 'other-mock', claims: (dev) => others.has(dev) });
    this.mock = createMockIommuDriver({ physMem: this.system.physMem, claims: (dev) => !others.has(dev) });
    this.#others = others;
    this.core.registerDriver(this.otherMock);
    this.core.registerDriver(this.mock);
    this.iommufd = new Iommufd(this.system, this.core);
    this.proc = this.system.spawn();
    this.fd = this.proc.open('/dev/iommu');
    this.scratch = this.proc.mmap(PAGE_SIZE * 4n);
    this.buffer = this.proc.mmap(BUFFER_SIZE);
    if (this.fd < 0 || this.scratch < 0n || this.buffer < 0n) throw new Error('fixture setup failed');
  }

  get ictx(): IommufdCtx {
    const ictx = this.iommufd.ctxFromFile(this.proc.fdget(this.fd));
    if (!ictx) throw new Error('not an iommufd');
    return ictx;
  }

  /**
   * Places `value` (encoded with `codec`, `size` bytes of it, default the
   * whole struct, `size` field set to match) in the scratch area, issues
   * the ioctl and returns the result with the struct as the kernel left it.
   */
  ioctl<T>(request: number, codec: StructCodec<T>, value: DeepPartial<NoInfer<T>>, size = codec.size): { rc: number; out: T } {
    const bytes = new Uint8Array(Math.max(size, codec.size));
    codec.write(bytes, 0, { size, ...(value as object) } as unknown as DeepPartial<T>);
    this.proc.mm.copyToUser(this.scratch, bytes.subarray(0, Math.max(size, 4)));
    const rc = this.proc.ioctl(this.fd, request, this.scratch);
    const back = new Uint8Array(codec.size);
    back.set(this.proc.mm.copyFromUser(this.scratch, Math.min(size, codec.size)));
    return { rc, out: codec.decode(back) };
  }

  /** The raw bytes of the scratch area (what the kernel wrote back). */
  scratchBytes(length: number): Uint8Array {
    return this.proc.mm.copyFromUser(this.scratch, length);
  }

  ioasAlloc(): number {
    const { rc, out } = this.ioctl(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {});
    if (rc !== 0) throw new Error(`IOMMU_IOAS_ALLOC failed: ${rc}`);
    return out.out_ioas_id;
  }

  /** IOMMU_IOAS_MAP; `iova` null lets the kernel choose. Returns rc and the iova written back. */
  map(ioasId: number, userVa: bigint, length: bigint, iova: bigint | null, flags = RW): { rc: number; iova: bigint } {
    const { rc, out } = this.ioctl(IOMMU_IOAS_MAP, iommu_ioas_map, {
      flags: flags | (iova === null ? 0 : IOMMU_IOAS_MAP_FIXED_IOVA),
      ioas_id: ioasId,
      user_va: userVa,
      length,
      iova: iova ?? 0n,
    });
    return { rc, iova: out.iova };
  }

  /** A new mock device probed into `groupId` (a new group by default), not bound. */
  probeDevice(flags = 0, options: { groupId?: number; other?: boolean } = {}): { dev: IommuClientDevice; groupId: number } {
    const driver = options.other ? this.otherMock : this.mock;
    const dev = driver.createDevice(flags);
    if (options.other) this.#others.add(dev);
    const groupId = options.groupId ?? this.#nextGroup++;
    this.core.probeDevice(dev, groupId);
    return { dev, groupId };
  }

  /** A new mock device (of the other mock IOMMU with `other`), bound to this context as vfio would. */
  bindDevice(flags = 0, options: { groupId?: number; other?: boolean } = {}): MockDevice {
    const { dev, groupId } = this.probeDevice(flags, options);
    const idev = this.iommufd.deviceBind(this.ictx, dev, groupId);
    return { dev, groupId, idev };
  }

  /** The errno of a failed call, for readable expectations. */
  static errno(name: keyof typeof Errno): number {
    return -Errno[name];
  }
}

export const err = IommufdFixture.errno;

/**
 * A page the process can read but not write, holding `bytes`: a memfd
 * mapped twice, read-write to fill it and read-only to hand to the kernel.
 * An ioctl whose struct lives there reads fine and faults on write-back.
 */
export function readOnlyCopy(f: IommufdFixture, bytes: Uint8Array): bigint {
  const memfd = f.proc.memfdCreate('ro');
  f.proc.ftruncate(memfd, PAGE_SIZE);
  const rw = f.proc.mmap(PAGE_SIZE, { fd: memfd });
  const ro = f.proc.mmap(PAGE_SIZE, { fd: memfd, prot: 0x1 });
  f.proc.mm.copyToUser(rw, bytes);
  f.proc.close(memfd);
  return ro;
}
