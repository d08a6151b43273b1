/**
 * A minimal valid PCI expansion ROM image: the 0x55AA signature, the size in
 * 512-byte units, a pointer to a PCI Data Structure ("PCIR") naming the
 * function's vendor and device, and the last-image indicator. Linux's
 * pci_map_rom() checks exactly these before it lets anyone read a ROM.
 */
export function buildRomImage(size: number, vendorId: number, deviceId: number, classCode: number): Uint8Array {
  const image = new Uint8Array(size);
  const imageLength = Math.min(size, 0xffff * 512);
  const units = Math.ceil(imageLength / 512);
  image[0] = 0x55;
  image[1] = 0xaa;
  image[2] = Math.min(units, 0xff);
  const pcir = 0x1c;
  image[0x18] = pcir & 0xff;
  image[0x19] = pcir >> 8;
  image.set([0x50, 0x43, 0x49, 0x52], pcir); // "PCIR"
  put16(image, pcir + 4, vendorId);
  put16(image, pcir + 6, deviceId);
  put16(image, pcir + 0x0a, 0x18); // PCI Data Structure length
  image[pcir + 0x0c] = 3; // revision
  image[pcir + 0x0d] = classCode & 0xff;
  image[pcir + 0x0e] = (classCode >> 8) & 0xff;
  image[pcir + 0x0f] = (classCode >> 16) & 0xff;
  put16(image, pcir + 0x10, units);
  image[pcir + 0x14] = 0x00; // code type: x86 PC-AT
  image[pcir + 0x15] = 0x80; // last image
  return image;
}

function put16(buffer: Uint8Array, at: number, value: number): void {
  buffer[at] = value & 0xff;
  buffer[at + 1] = (value >> 8) & 0xff;
}
