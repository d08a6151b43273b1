import {
  DriverCore,
  IommuCore,
  OpenFile,
  SimError,
  System,
  VfioCore,
  VfioDevice,
  createMockIommuDriver,
  physicalIommufdOps,
  type FileOperations,
  type Frame,
  type IommuClientDevice,
  type IommufdAccessHandle,
  type IommufdAccessOps,
  type IommufdCtxHandle,
  type IommufdDeviceHandle,
  type IommufdKapi,
  type PciBusDevice,
  type PciDeviceId,
  type PciDriver,
  type Process,
  type VfioDeviceOps,
  type VfioIommuBackend,
  type VfioIommuDriverOps,
  type VfioRegisterOptions,
  VFIO_CHECK_EXTENSION,
  VFIO_TYPE1v2_IOMMU,
  VFIO_TYPE1_IOMMU,
} from '@vfiosim/core';

/** A PCI function as the driver core and the IOMMU core see it. */
export interface TestFunction extends PciBusDevice, IommuClientDevice {}

let nextRid = 0x100;

export function pciFunction(name: string, ids: Partial<Omit<TestFunction, 'name'>> = {}): TestFunction {
  return {
    name,
    vendorId: 0x8086,
    deviceId: 0x1234,
    subsystemVendorId: 0x8086,
    subsystemId: 0x0001,
    classCode: 0x020000,
    rid: nextRid++,
    maxPasidLog2: 0,
    atsCapable: false,
    ...ids,
  };
}

interface FakeCtx extends IommufdCtxHandle {
  refs: number;
  compatIoas: number | null;
  noIommu: boolean;
  readonly ioas: Set<number>;
  nextId: number;
  readonly bound: Map<IommuClientDevice, FakeIdev>;
}

interface FakeIdev extends IommufdDeviceHandle {
  readonly dev: IommuClientDevice;
  readonly groupId: number;
  /** null key: the RID. */
  readonly attached: Map<number | null, number>;
}

interface FakeAccess extends IommufdAccessHandle {
  ioas: number | null;
  readonly ops: IommufdAccessOps;
}

/**
 * A stand-in for iommufd that keeps just what the vfio core's side of the
 * contract needs: contexts behind /dev/iommu files, device binding with the
 * IOMMU core's per-device DMA ownership, IOAS ids to attach to, and the
 * VFIO compat IOAS. attach answers ENOENT for an unknown id and returns the
 * IOAS id plus 1000, standing for the HWPT iommufd would create.
 */
export class FakeIommufd implements IommufdKapi {
  readonly calls: string[] = [];
  #nextCtx = 1;
  readonly fileOps: FileOperations;

  constructor(private readonly iommu: IommuCore) {
    const self = this;
    this.fileOps = Object.freeze({
      kind: 'iommufd',
      release(file: OpenFile) {
        self.ctxPut(file.privateData as FakeCtx);
      },
    });
  }

  /** open("/dev/iommu"). */
  openFile(flags: number): OpenFile {
    const ctx: FakeCtx = { id: this.#nextCtx++, refs: 1, compatIoas: null, noIommu: false, ioas: new Set(), nextId: 1, bound: new Map() };
    return new OpenFile(this.fileOps, flags, ctx);
  }

  /** IOMMU_IOAS_ALLOC on the context of an open iommufd. */
  allocIoas(proc: Process, fd: number): number {
    const ctx = proc.fdget(fd).privateData as FakeCtx;
    const id = ctx.nextId++;
    ctx.ioas.add(id);
    return id;
  }

  ctxOf(proc: Process, fd: number): FakeCtx {
    return proc.fdget(fd).privateData as FakeCtx;
  }

  ctxFromFile(file: OpenFile): IommufdCtxHandle | null {
    return file.ops === this.fileOps ? (file.privateData as FakeCtx) : null;
  }

  ctxGet(ictx: IommufdCtxHandle): void {
    (ictx as FakeCtx).refs++;
  }

  ctxPut(ictx: IommufdCtxHandle): void {
    (ictx as FakeCtx).refs--;
  }

  deviceBind(ictx: IommufdCtxHandle, dev: IommuClientDevice, groupId: number): IommufdDeviceHandle {
    const ctx = ictx as FakeCtx;
    this.iommu.deviceClaimDmaOwner(dev, ctx);
    const idev: FakeIdev = { devId: ctx.nextId++, ictx, dev, groupId, attached: new Map() };
    ctx.bound.set(dev, idev);
    this.calls.push(`bind ${dev.name}`);
    return idev;
  }

  deviceUnbind(idev: IommufdDeviceHandle): void {
    const fake = idev as FakeIdev;
    if (fake.attached.size !== 0) throw new Error('unbind with attachments left');
    (fake.ictx as FakeCtx).bound.delete(fake.dev);
    this.iommu.deviceReleaseDmaOwner(fake.dev);
    this.calls.push(`unbind ${fake.dev.name}`);
  }

  deviceAttach(idev: IommufdDeviceHandle, pasid: number | null, ptId: number): number {
    const fake = idev as FakeIdev;
    if (!(fake.ictx as FakeCtx).ioas.has(ptId)) throw new SimError('NOT_FOUND', `no IOAS ${ptId}`);
    if (fake.attached.has(pasid)) throw new SimError('BUSY', 'already attached');
    fake.attached.set(pasid, ptId);
    this.calls.push(`attach ${fake.dev.name} ${pasid ?? 'rid'} ${ptId}`);
    return ptId + 1000;
  }

  deviceReplace(idev: IommufdDeviceHandle, pasid: number | null, ptId: number): number {
    const fake = idev as FakeIdev;
    if (!(fake.ictx as FakeCtx).ioas.has(ptId)) throw new SimError('NOT_FOUND', `no IOAS ${ptId}`);
    fake.attached.set(pasid, ptId);
    this.calls.push(`replace ${fake.dev.name} ${pasid ?? 'rid'} ${ptId}`);
    return ptId + 1000;
  }

  deviceDetach(idev: IommufdDeviceHandle, pasid: number | null): void {
    const fake = idev as FakeIdev;
    fake.attached.delete(pasid);
    this.calls.push(`detach ${fake.dev.name} ${pasid ?? 'rid'}`);
  }

  ctxHasGroup(ictx: IommufdCtxHandle, groupId: number): boolean {
    return [...(ictx as FakeCtx).bound.values()].some((idev) => idev.groupId === groupId);
  }

  deviceIdInCtx(ictx: IommufdCtxHandle, dev: IommuClientDevice): number | null {
    return (ictx as FakeCtx).bound.get(dev)?.devId ?? null;
  }

  vfioCompatIoasCreate(ictx: IommufdCtxHandle): void {
    const ctx = ictx as FakeCtx;
    if (ctx.compatIoas !== null) return;
    const id = ctx.nextId++;
    ctx.ioas.add(id);
    ctx.compatIoas = id;
  }

  vfioCompatSetNoIommu(ictx: IommufdCtxHandle): void {
    const ctx = ictx as FakeCtx;
    if (ctx.compatIoas !== null) throw new SimError('INVALID_ARGUMENT', 'the context has a compat IOAS');
    ctx.noIommu = true;
  }

  vfioCompatIoasGetId(ictx: IommufdCtxHandle): number {
    const ctx = ictx as FakeCtx;
    if (ctx.compatIoas === null) throw new SimError('NO_SUCH_DEVICE', 'no compat IOAS');
    return ctx.compatIoas;
  }

  accessCreate(ictx: IommufdCtxHandle, ops: IommufdAccessOps): IommufdAccessHandle {
    const ctx = ictx as FakeCtx;
    const access: FakeAccess = { devId: ctx.nextId++, ictx, ioas: null, ops };
    return access;
  }

  accessDestroy(access: IommufdAccessHandle): void {
    this.calls.push(`access destroy ${access.devId}`);
  }

  accessAttach(access: IommufdAccessHandle, ioasId: number): void {
    const fake = access as FakeAccess;
    if (!(fake.ictx as FakeCtx).ioas.has(ioasId)) throw new SimError('NOT_FOUND', `no IOAS ${ioasId}`);
    fake.ioas = ioasId;
  }

  accessReplace(access: IommufdAccessHandle, ioasId: number): void {
    this.accessAttach(access, ioasId);
  }

  accessDetach(access: IommufdAccessHandle): void {
    (access as FakeAccess).ioas = null;
  }

  accessPinPages(access: IommufdAccessHandle, iova: bigint, length: bigint): Frame[] {
    this.calls.push(`access pin ${access.devId} 0x${iova.toString(16)}+0x${length.toString(16)}`);
    return [];
  }

  accessUnpinPages(access: IommufdAccessHandle, iova: bigint, length: bigint): void {
    this.calls.push(`access unpin ${access.devId} 0x${iova.toString(16)}+0x${length.toString(16)}`);
  }

  accessRw(access: IommufdAccessHandle, iova: bigint, data: Uint8Array, write: boolean): void {
    this.calls.push(`access ${write ? 'write' : 'read'} ${access.devId} 0x${iova.toString(16)}+${data.length}`);
  }
}

/** A container back end that records what the core asks of it, standing in for type1. */
export class FakeType1 implements VfioIommuDriverOps {
  readonly name = 'fake-type1';
  readonly events: string[] = [];
  /** Groups whose attach the back end refuses (EBUSY). */
  readonly refuse = new Set<number>();

  checkExtension(extension: number): number {
    return extension === VFIO_TYPE1v2_IOMMU || extension === VFIO_TYPE1_IOMMU ? 1 : 0;
  }

  open(type: number): VfioIommuBackend {
    const events = this.events;
    const refuse = this.refuse;
    events.push(`open ${type}`);
    const backend: VfioIommuBackend = {
      driver: this,
      ioctl(_proc, request, argp) {
        events.push(`ioctl 0x${request.toString(16)} ${argp}`);
        if (request === VFIO_CHECK_EXTENSION) return argp === BigInt(type) ? 1 : 0;
        return 7;
      },
      attachGroup(group, groupType) {
        if (refuse.has(group.id)) throw new SimError('BUSY', 'refused');
        events.push(`attach ${group.id} ${groupType}`);
      },
      detachGroup(group) {
        events.push(`detach ${group.id}`);
      },
      registerDevice(vdev) {
        events.push(`register ${vdev.name}`);
      },
      unregisterDevice(vdev) {
        events.push(`unregister ${vdev.name}`);
      },
      notifyContainerClose() {
        events.push('container close');
      },
      release() {
        events.push('release');
      },
    };
    return backend;
  }
}

export interface FixtureDevice extends VfioDevice {
  readonly events: string[];
}

/**
 * The test's own vfio driver: one VfioDevice per PCI function it probes,
 * with a small ops table that records what the core calls and serves an
 * 8-byte register file through pread/pwrite.
 */
export function fixtureDriver(
  vfio: VfioCore,
  options: {
    name?: string;
    idTable?: readonly PciDeviceId[];
    ops?: Partial<VfioDeviceOps>;
    register?: VfioRegisterOptions;
    emulated?: boolean;
  } = {},
): PciDriver & { readonly devices: Map<string, FixtureDevice> } {
  const devices = new Map<string, FixtureDevice>();
  const name = options.name ?? 'vfio-fixture';
  const regs = new Uint8Array(8);
  const ops: VfioDeviceOps = {
    name,
    ...physicalIommufdOps(vfio.iommufdGlue),
    openDevice: (vdev) => (vdev as FixtureDevice).events.push('open'),
    closeDevice: (vdev) => (vdev as FixtureDevice).events.push('close'),
    read: (_vdev, _proc, length, offset) => regs.slice(Number(offset), Number(offset) + length),
    write: (_vdev, _proc, data, offset) => {
      regs.set(data, Number(offset));
      return data.length;
    },
    ioctl: (vdev, _proc, request) => {
      (vdev as FixtureDevice).events.push(`ioctl 0x${request.toString(16)}`);
      return 42;
    },
    request: (vdev, count) => (vdev as FixtureDevice).events.push(`request ${count} at ${vfio.system.clock.now}`),
    ...options.ops,
  };
  return {
    name,
    driverManagedDma: true,
    idTable: options.idTable ?? [{ vendor: 0x8086, device: 0x1234 }],
    devices,
    probe(dev) {
      const vdev = Object.assign(new VfioDevice(dev, ops), { events: [] as string[] }) as FixtureDevice;
      if (options.emulated) vfio.registerEmulatedIommuDev(vdev, options.register);
      else vfio.registerGroupDev(vdev, options.register);
      devices.set(dev.name, vdev);
    },
    async remove(dev) {
      const vdev = devices.get(dev.name)!;
      await vfio.unregister(vdev);
      devices.delete(dev.name);
    },
  };
}

/** A driver that uses the DMA API (no driver_managed_dma), like a NIC driver of the host. */
export function hostDriver(name: string, idTable: readonly PciDeviceId[] = [{ vendor: 0x8086 }]): PciDriver & { probed: string[] } {
  const probed: string[] = [];
  return {
    name,
    idTable,
    probed,
    probe(dev) {
      probed.push(dev.name);
    },
    remove(dev) {
      probed.splice(probed.indexOf(dev.name), 1);
    },
  };
}

/** One host: OS, IOMMU core with the mock IOMMU driver, driver core, the fake iommufd at /dev/iommu, and the vfio core. */
export function makeHost(options: { noiommu?: boolean } = {}) {
  const system = new System();
  const iommu = new IommuCore();
  iommu.registerDriver(createMockIommuDriver({ physMem: system.physMem }));
  const drivers = new DriverCore(iommu);
  const iommufd = new FakeIommufd(iommu);
  system.devfs.register('/dev/iommu', (_proc, flags) => iommufd.openFile(flags));
  const vfio = new VfioCore(system, drivers, iommu, iommufd, { noiommu: options.noiommu ?? false });
  const type1 = new FakeType1();
  vfio.registerIommuDriver(type1);
  return {
    system,
    iommu,
    drivers,
    iommufd,
    vfio,
    type1,
    /** Adds a PCI function in IOMMU group `groupId` (null: no IOMMU) and lets the drivers probe it. */
    addFunction(name: string, groupId: number | null, ids: Partial<Omit<TestFunction, 'name'>> = {}): TestFunction {
      const fn = pciFunction(name, ids);
      if (groupId !== null) iommu.probeDevice(fn, groupId);
      drivers.addPciDevice(fn);
      return fn;
    },
  };
}

export type Host = ReturnType<typeof makeHost>;

/** A process with one page of scratch memory mapped at `va`. */
export function spawnWithScratch(system: System, pages = 4): { proc: Process; va: bigint } {
  const proc = system.spawn();
  const va = proc.mmap(pages * 4096);
  if (va < 0n) throw new Error(`mmap failed: ${va}`);
  return { proc, va };
}

export function writeString(proc: Process, va: bigint, text: string): void {
  const bytes = new TextEncoder().encode(`${text}\0`);
  if (proc.mem.write(va, bytes) !== 0) throw new Error('scratch write failed');
}
