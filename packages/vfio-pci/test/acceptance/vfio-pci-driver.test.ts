import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errno, FIONBIO, MAP_ANONYMOUS, MAP_SHARED, PROT_READ, PROT_WRITE, type Host } from '@vfiosim/core';
import { CopyEngine } from './copy-engine.js';
import { DMA_BDF, dmaEngineHost } from './hosts.js';
import { IOMMU_MODES, Iommu, IovaAllocator, type DmaRegion } from './libvfio/iommu.js';
import { VfioPciDriver } from './libvfio/vfio-pci-driver.js';
import { Sysfs, VfioPciDevice, readEventfd } from './libvfio/vfio-pci-device.js';
import { User } from './user.js';

/*
 * tools/testing/selftests/vfio/vfio_pci_driver_test.c against the copy
 * engine of copy-engine.ts. The device does real DMA through the IOMMU at
 * the IOVAs the process mapped; the process then compares its own memory.
 *
 * Sizes are scaled to the mock IOMMU's 2 GiB aperture and to a simulator:
 * the memcpy region is 16 MiB (upstream 1 GiB), the unmapped IOVA 16 MiB
 * (upstream 1 GiB), and the storm moves 64 MiB (upstream up to 250 GiB).
 */

const SZ_1M = 1n << 20n;
const SZ_2M = 2n << 20n;
const MEMCPY_REGION = 16n * SZ_1M;
const STORM_TOTAL = 64n * SZ_1M;

describe.each(IOMMU_MODES.map((mode) => mode.name))('vfio_pci_driver_test (%s)', (mode) => {
  let host: Host;
  let user: User;
  let iommu: Iommu;
  let allocator: IovaAllocator;
  let device: VfioPciDevice;
  let driver: VfioPciDriver;
  let engine: CopyEngine;
  let memcpyRegion: DmaRegion;
  let msiFd: number;
  let size: bigint;
  let src: bigint;
  let dst: bigint;
  let srcIova: bigint;
  let dstIova: bigint;
  let unmappedIova: bigint;

  /** region_setup: shared anonymous memory at a fresh IOVA, mapped. */
  function regionSetup(regionSize: bigint): DmaRegion {
    const vaddr = user.proc.mmap(regionSize, { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED | MAP_ANONYMOUS });
    expect(vaddr > 0n).toBe(true);
    const region = { vaddr, iova: allocator.alloc(regionSize), size: regionSize };
    iommu.map(region);
    return region;
  }

  function regionTeardown(region: DmaRegion): void {
    iommu.unmap(region);
    expect(user.proc.munmap(region.vaddr, region.size)).toBe(0);
  }

  /** ASSERT_NO_MSI: the eventfd is non-blocking and holds nothing. */
  function expectNoMsi(): void {
    expect(readEventfd(user, msiFd)).toBe(-BigInt(Errno.EAGAIN));
  }

  function fcntlSetNonblock(fd: number): void {
    expect(user.proc.ioctl(fd, FIONBIO, user.int(1))).toBe(0);
  }

  function fill(at: bigint, length: bigint, byte: number): void {
    expect(user.proc.mem.write(at, new Uint8Array(Number(length)).fill(byte))).toBe(0);
  }

  function sameBytes(a: bigint, b: bigint, length: bigint): boolean {
    const left = user.read(a, Number(length));
    const right = user.read(b, Number(length));
    return left.every((byte, i) => byte === right[i]);
  }

  beforeEach(() => {
    host = dmaEngineHost();
    const fn = host.platform.get(DMA_BDF);
    engine = new CopyEngine(fn, host.dma);
    fn.setBarHandler(engine);

    user = new User(host.spawn());
    iommu = new Iommu(user, mode);
    device = VfioPciDevice.init(new Sysfs(host), DMA_BDF, iommu);
    driver = new VfioPciDriver(device);
    expect(driver.probe()).toBe(true);
    allocator = new IovaAllocator(iommu);

    memcpyRegion = regionSetup(MEMCPY_REGION);
    driver.region = regionSetup(SZ_2M);
    // Any IOVA that overlaps neither region.
    unmappedIova = allocator.alloc(MEMCPY_REGION);

    driver.init();
    msiFd = device.msiEventfds[driver.msi]!;

    size = driver.maxMemcpySize < memcpyRegion.size / 2n ? driver.maxMemcpySize : memcpyRegion.size / 2n;
    src = memcpyRegion.vaddr;
    dst = src + size;
    srcIova = device.iommu.hva2iova(src);
    dstIova = device.iommu.hva2iova(dst);
  });

  afterEach(() => {
    driver.remove();
    regionTeardown(memcpyRegion);
    regionTeardown(driver.region!);
    device.cleanup();
    iommu.cleanup();
  });

  it('init_remove', () => {
    for (let i = 0; i < 10; i++) {
      driver.remove();
      driver.init();
    }
    expect(device.msiEventfds[driver.msi]).toBeGreaterThanOrEqual(0);
  });

  it('memcpy_success: the device copies between two mapped IOVAs and raises no interrupt', () => {
    fcntlSetNonblock(msiFd);
    fill(src, size, 'x'.charCodeAt(0));
    fill(dst, size, 'y'.charCodeAt(0));
    expect(driver.memcpy(srcIova, dstIova, size)).toBe(0);
    expect(sameBytes(src, dst, size)).toBe(true);
    expectNoMsi();
  });

  it('memcpy_from_unmapped_iova: the read faults in the IOMMU, nothing is written, no interrupt', () => {
    fcntlSetNonblock(msiFd);
    fill(dst, size, 'y'.charCodeAt(0));
    // Upstream ignores the result: not every device reports the fault. This one halts.
    expect(driver.memcpy(unmappedIova, dstIova, size)).toBe(-1);
    expect(user.read(dst, Number(size)).every((byte) => byte === 'y'.charCodeAt(0))).toBe(true);
    expect(host.dma.faultLog.at(-1)).toMatchObject({ iova: unmappedIova, direction: 'read' });
    expectNoMsi();
  });

  it('memcpy_to_unmapped_iova: the write faults in the IOMMU, no interrupt', () => {
    fcntlSetNonblock(msiFd);
    expect(driver.memcpy(srcIova, unmappedIova, size)).toBe(-1);
    expect(host.dma.faultLog.at(-1)).toMatchObject({ iova: unmappedIova, direction: 'write' });
    expectNoMsi();
  });

  it('send_msi: the interrupt the device raises arrives on the MSI-X eventfd', () => {
    driver.sendMsi();
    expect(readEventfd(user, msiFd)).toBe(1n);
  });

  it('mix_and_match', () => {
    for (let i = 0; i < 10; i++) {
      fill(src, size, 'x'.charCodeAt(0));
      fill(dst, size, 'y'.charCodeAt(0));
      expect(driver.memcpy(srcIova, dstIova, size)).toBe(0);
      expect(sameBytes(src, dst, size)).toBe(true);
      driver.memcpy(unmappedIova, dstIova, size);
      driver.sendMsi();
      expect(readEventfd(user, msiFd)).toBe(1n);
    }
  });

  it('memcpy_storm', () => {
    fcntlSetNonblock(msiFd);
    const count = STORM_TOTAL / size < driver.maxMemcpyCount ? STORM_TOTAL / size : driver.maxMemcpyCount;
    const before = engine.completed;
    driver.memcpyStart(srcIova, dstIova, size, count);
    expect(driver.memcpyWait()).toBe(0);
    expect(engine.completed - before).toBe(Number(count));
    expectNoMsi();
  });

  it('a copy with Bus Master Enable cleared is refused by the function, not by the IOMMU', () => {
    const faults = host.dma.faultLog.length;
    device.configWritew(0x04, device.configReadw(0x04) & ~0x4);
    expect(driver.memcpy(srcIova, dstIova, size)).toBe(-1);
    expect(host.dma.faultLog.length).toBe(faults);
  });
});
