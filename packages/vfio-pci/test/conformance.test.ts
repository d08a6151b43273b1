import { describe, it } from 'vitest';
import { mockIommu, variantDriverConformance, type VariantDriverSubject } from '@vfiosim/core';
import { vfioPci } from '../src/index.js';

/**
 * vfio-pci against the variant driver suite of core's conformance kit: a
 * dual-function-capable Intel NIC with MSI-X, a 64-bit BAR, an I/O BAR and
 * a ROM, bound to vfio-pci by driver_override behind the mock IOMMU.
 */
const subject: VariantDriverSubject = {
  plugins: () => [mockIommu(), vfioPci()],
  description: {
    devices: [{
      bdf: '0000:00:03.0',
      vendorId: 0x8086,
      deviceId: 0x10fb,
      classCode: 0x020000,
      driver: 'vfio-pci',
      bars: [
        { index: 0, type: 'mem64', size: '512K' },
        { index: 2, type: 'io', size: 32 },
        { index: 4, type: 'mem64', size: '16K' },
      ],
      romSize: '64K',
      capabilities: { msix: { tableSize: 64, tableBar: 4, tableOffset: 0, pbaBar: 4, pbaOffset: 0x2000 } },
    }],
  },
  bdf: '0000:00:03.0',
};

describe('vfio-pci conformance', () => {
  for (const c of variantDriverConformance(subject)) it(c.name, c.run);
});
