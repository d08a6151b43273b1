import { describe, expect, it } from 'vitest';
import {
  Errno,
  MAP_PRIVATE,
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  VFIO_DEVICE_FLAGS_CAPS,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_BAR1_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfio_info_cap_header,
  vfio_region_info,
  vfioPciIndexToOffset,
  VFIO_DEVICE_GET_REGION_INFO,
} from '@vfiosim/core';
import { CONFIG, Rig } from './helpers.js';

const RW = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
const BAR0 = vfioPciIndexToOffset(VFIO_PCI_BAR0_REGION_INDEX);

/** Where the MSI-X table sits in BAR 0 of the default device. */
function msixTableOffset(rig: Rig): bigint {
  return BigInt(rig.vdev.msixOffset);
}

function enableMemory(rig: Rig): void {
  rig.cfgWrite(PCI_COMMAND, 2, rig.cfgRead(PCI_COMMAND, 2) | PCI_COMMAND_MEMORY);
}

describe('VFIO_DEVICE_GET_REGION_INFO', () => {
  it('describes the config region', () => {
    const rig = new Rig();
    const { rc, info } = rig.regionInfo(VFIO_PCI_CONFIG_REGION_INDEX);
    expect(rc).toBe(0);
    expect(info).toMatchObject({ index: VFIO_PCI_CONFIG_REGION_INDEX, flags: RW, size: 4096n, offset: CONFIG });
  });

  it('marks the MSI-X BAR mmappable with the MSIX_MAPPABLE capability after the struct', () => {
    const rig = new Rig();
    const full = vfio_region_info.size + vfio_info_cap_header.size;
    const { rc, info, bytes } = rig.regionInfo(VFIO_PCI_BAR0_REGION_INDEX, full);
    expect(rc).toBe(0);
    expect(info.flags).toBe(RW | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS);
    expect(info.size).toBe(0x4000n);
    expect(info.offset).toBe(BAR0);
    expect(info.cap_offset).toBe(vfio_region_info.size);
    expect(info.argsz).toBe(full);
    expect(vfio_info_cap_header.decode(bytes, vfio_region_info.size)).toEqual({ id: VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, version: 1, next: 0 });
  });

  it('raises argsz and leaves cap_offset 0 when the capability chain does not fit', () => {
    const rig = new Rig();
    const { rc, info, bytes } = rig.regionInfo(VFIO_PCI_BAR0_REGION_INDEX, vfio_region_info.size, 8);
    expect(rc).toBe(0);
    expect(info.argsz).toBe(vfio_region_info.size + vfio_info_cap_header.size);
    expect(info.cap_offset).toBe(0);
    expect(info.flags & VFIO_REGION_INFO_FLAG_CAPS).toBe(VFIO_REGION_INFO_FLAG_CAPS);
    expect([...bytes.subarray(vfio_region_info.size)]).toEqual(new Array(8).fill(0));
  });

  it('leaves cap_offset as the user wrote it for a region without capabilities', () => {
    const rig = new Rig();
    rig.proc.mem.write(rig.scratch, vfio_region_info.encodeNew({ argsz: 32, index: VFIO_PCI_CONFIG_REGION_INDEX, cap_offset: 0x1234 }));
    expect(rig.proc.ioctl(rig.fd, VFIO_DEVICE_GET_REGION_INFO, rig.scratch)).toBe(0);
    expect(vfio_region_info.decode(rig.proc.mem.read(rig.scratch, 32) as Uint8Array).cap_offset).toBe(0x1234);
  });

  it('reports the upper half of a 64-bit BAR and an unimplemented BAR as empty', () => {
    const rig = new Rig();
    expect(rig.regionInfo(VFIO_PCI_BAR1_REGION_INDEX).info).toMatchObject({ flags: 0, size: 0n });
    expect(rig.regionInfo(5).info).toMatchObject({ flags: 0, size: 0n, offset: vfioPciIndexToOffset(5) });
  });

  it('does not offer mmap of an I/O BAR or a BAR smaller than a page that is not page aligned', () => {
    const rig = new Rig({ bars: [{ index: 0, type: 'mem64', size: '16K' }, { index: 2, type: 'io', size: 32 }] });
    expect(rig.regionInfo(2).info.flags).toBe(RW);
  });

  it('reports a readable ROM BAR with its BAR size when it holds an image', () => {
    const rig = new Rig({ romSize: '64K' });
    expect(rig.regionInfo(VFIO_PCI_ROM_REGION_INDEX).info).toMatchObject({ flags: VFIO_REGION_INFO_FLAG_READ, size: 0x10000n });
    expect(new Rig().regionInfo(VFIO_PCI_ROM_REGION_INDEX).info).toMatchObject({ flags: 0, size: 0n });
  });

  it('answers EINVAL for the VGA region of a device that is not VGA and past the last region', () => {
    const rig = new Rig();
    expect(rig.regionInfo(VFIO_PCI_VGA_REGION_INDEX).rc).toBe(-Errno.EINVAL);
    expect(rig.regionInfo(VFIO_PCI_NUM_REGIONS).rc).toBe(-Errno.EINVAL);
    expect(rig.regionInfo(0xffffffff).rc).toBe(-Errno.EINVAL);
  });

  it('rejects argsz below the struct with EINVAL', () => {
    const rig = new Rig();
    expect(rig.regionInfo(VFIO_PCI_CONFIG_REGION_INDEX, 31).rc).toBe(-Errno.EINVAL);
  });

  it('describes the legacy VGA region of a VGA device when VGA support is on', async () => {
    const { plainDriverPlugin } = await import('./fixtures/plain-driver.js');
    const rig = new Rig({ classCode: 0x030000 }, { plugins: [plainDriverPlugin({ params: { vga: true } })] });
    expect(rig.regionInfo(VFIO_PCI_VGA_REGION_INDEX).info).toMatchObject({ flags: RW, size: 0xc0000n });
    const buf = new Uint8Array(4);
    const vga = vfioPciIndexToOffset(VFIO_PCI_VGA_REGION_INDEX);
    expect(rig.proc.pread(rig.fd, buf, vga + 0x3c0n)).toBe(4);
    expect(rig.proc.pread(rig.fd, new Uint8Array(16), vga + 0x3b8n)).toBe(4);
    expect(rig.proc.pread(rig.fd, buf, vga + 0x400n)).toBe(-Errno.EINVAL);
    const plain = new Rig({ classCode: 0x030000 });
    expect(plain.regionInfo(VFIO_PCI_VGA_REGION_INDEX).rc).toBe(-Errno.EINVAL);
  });
});

describe('VFIO_DEVICE_GET_INFO', () => {
  it('reports a resettable PCI device with the fixed regions and interrupt indexes', () => {
    const rig = new Rig();
    const { rc, info } = rig.deviceInfo();
    expect(rc).toBe(0);
    expect(info).toEqual({
      argsz: 24,
      flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
      num_regions: VFIO_PCI_NUM_REGIONS,
      num_irqs: VFIO_PCI_NUM_IRQS,
      cap_offset: 0,
      pad: 0,
    });
  });

  it('writes back only argsz bytes when argsz stops before cap_offset', () => {
    const rig = new Rig();
    const { rc, bytes } = rig.deviceInfo(16);
    expect(rc).toBe(0);
    expect([...bytes.subarray(16, 24)]).toEqual(new Array(8).fill(0xa5));
    expect(rig.deviceInfo(15).rc).toBe(-Errno.EINVAL);
  });

  it('does not offer reset for a function without a working reset method', () => {
    const rig = new Rig({ capabilities: { pcie: { flr: false }, pm: { noSoftReset: true } } });
    expect(rig.deviceInfo().info.flags).toBe(VFIO_DEVICE_FLAGS_PCI);
  });

  it('adds the AtomicOp completion capability when the root port completes AtomicOps', () => {
    const rig = new Rig({ bdf: '0000:01:00.0' }, { description: { bridges: [{ bdf: '0000:00:01.0', kind: 'root-port', secondaryBus: 1 }] } });
    const port = rig.host.platform.get('0000:00:01.0');
    port.config.hwUpdate(port.pcieCap + 36, 4, 0x380, 0x180);
    rig.fn.config.hwUpdate(rig.fn.pcieCap + 36, 4, 0x380, 0x180);
    const { rc, info } = rig.deviceInfo(24, 16);
    expect(rc).toBe(0);
    expect(info.flags).toBe(VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_CAPS);
    expect(info.argsz).toBe(40);
    expect(info.cap_offset).toBe(0);
    const fits = rig.deviceInfo(40);
    expect(fits.info.cap_offset).toBe(24);
    // COMP32 and COMP64 (flags 1 | 2); COMP128 is not completed by the root port.
    expect([...fits.bytes.subarray(24, 40)]).toEqual([5, 0, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe('BAR access through the device file', () => {
  it('reads and writes BAR registers while memory decode is on, and fails with EIO while it is off', () => {
    const rig = new Rig();
    const data = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    // pci_enable_device turned decode on at open, and the user's command register starts from it.
    expect(rig.cfgRead(PCI_COMMAND, 2) & PCI_COMMAND_MEMORY).toBe(PCI_COMMAND_MEMORY);
    rig.cfgWrite(PCI_COMMAND, 2, 0);
    expect(rig.proc.pwrite(rig.fd, data, BAR0 + 0x100n)).toBe(-Errno.EIO);
    expect(rig.proc.pread(rig.fd, new Uint8Array(4), BAR0)).toBe(-Errno.EIO);
    enableMemory(rig);
    expect(rig.proc.pwrite(rig.fd, data, BAR0 + 0x100n)).toBe(8);
    const back = new Uint8Array(8);
    expect(rig.proc.pread(rig.fd, back, BAR0 + 0x100n)).toBe(8);
    expect([...back]).toEqual([...data]);
    expect(rig.fn.readBar(0, 0x100n, 8)).toBe(0x0807060504030201n);
  });

  it('clips an access at the end of the BAR and rejects one that starts past it', () => {
    const rig = new Rig();
    enableMemory(rig);
    expect(rig.proc.pread(rig.fd, new Uint8Array(16), BAR0 + 0x3ff8n)).toBe(8);
    expect(rig.proc.pread(rig.fd, new Uint8Array(4), BAR0 + 0x4000n)).toBe(-Errno.EINVAL);
    expect(rig.proc.pread(rig.fd, new Uint8Array(4), vfioPciIndexToOffset(2))).toBe(-Errno.EINVAL);
  });

  it('keeps the MSI-X table out of reach: reads are all-ones, writes are dropped', () => {
    const rig = new Rig();
    enableMemory(rig);
    const table = msixTableOffset(rig);
    const buf = new Uint8Array(16);
    expect(rig.proc.pread(rig.fd, buf, BAR0 + table)).toBe(16);
    expect([...buf]).toEqual(new Array(16).fill(0xff));
    expect(rig.proc.pwrite(rig.fd, new Uint8Array(16), BAR0 + table)).toBe(16);
    expect(rig.fn.msix!.entry(0).masked).toBe(true);
  });

  it('reads the ROM image, 0xff past it, and refuses ROM writes', () => {
    const rig = new Rig({ romSize: '64K' });
    enableMemory(rig);
    const rom = vfioPciIndexToOffset(VFIO_PCI_ROM_REGION_INDEX);
    const head = new Uint8Array(2);
    expect(rig.proc.pread(rig.fd, head, rom)).toBe(2);
    expect([...head]).toEqual([0x55, 0xaa]);
    const tail = new Uint8Array(4);
    expect(rig.proc.pread(rig.fd, tail, rom + 0xfffcn)).toBe(4);
    expect(rig.proc.pwrite(rig.fd, head, rom)).toBe(-Errno.EINVAL);
  });

  it('answers EINVAL for an offset past the last region', () => {
    const rig = new Rig();
    expect(rig.proc.pread(rig.fd, new Uint8Array(4), vfioPciIndexToOffset(VFIO_PCI_NUM_REGIONS))).toBe(-Errno.EINVAL);
  });
});

describe('BAR mmap', () => {
  it('maps a BAR whose accesses reach the device while memory decode is on and fault while it is off', () => {
    const rig = new Rig();
    rig.cfgWrite(PCI_COMMAND, 2, 0);
    const va = rig.proc.mmap(0x4000, { fd: rig.fd, offset: BAR0 });
    expect(va).toBeGreaterThan(0n);
    expect(rig.proc.mem.readU32(va)).toBe(-Errno.EFAULT);
    enableMemory(rig);
    expect(rig.proc.mem.writeU32(va + 0x40n, 0xdeadbeef)).toBe(0);
    expect(rig.fn.readBar(0, 0x40n, 4)).toBe(0xdeadbeefn);
    rig.cfgWrite(PCI_COMMAND, 2, 0);
    expect(rig.proc.mem.readU32(va + 0x40n)).toBe(-Errno.EFAULT);
    enableMemory(rig);
    expect(rig.proc.mem.readU32(va + 0x40n)).toBe(0xdeadbeef);
  });

  it('reaches the MSI-X table through a mapping, which MSIX_MAPPABLE allows', () => {
    const rig = new Rig();
    enableMemory(rig);
    const va = rig.proc.mmap(0x4000, { fd: rig.fd, offset: BAR0 });
    expect(rig.proc.mem.readU32(va + msixTableOffset(rig) + 12n)).toBe(1);
  });

  it('refuses private mappings, ranges past the BAR, and regions that cannot be mapped with EINVAL', () => {
    const rig = new Rig({ romSize: '64K' });
    expect(rig.proc.mmap(0x4000, { fd: rig.fd, offset: BAR0, flags: MAP_PRIVATE })).toBe(-BigInt(Errno.EINVAL));
    expect(rig.proc.mmap(0x5000, { fd: rig.fd, offset: BAR0 })).toBe(-BigInt(Errno.EINVAL));
    expect(rig.proc.mmap(0x1000, { fd: rig.fd, offset: BAR0 + 0x4000n })).toBe(-BigInt(Errno.EINVAL));
    expect(rig.proc.mmap(0x1000, { fd: rig.fd, offset: vfioPciIndexToOffset(VFIO_PCI_ROM_REGION_INDEX) })).toBe(-BigInt(Errno.EINVAL));
    expect(rig.proc.mmap(0x1000, { fd: rig.fd, offset: CONFIG })).toBe(-BigInt(Errno.EINVAL));
    expect(rig.proc.mmap(0x1000, { fd: rig.fd, offset: vfioPciIndexToOffset(VFIO_PCI_NUM_REGIONS) })).toBe(-BigInt(Errno.EINVAL));
  });
});
