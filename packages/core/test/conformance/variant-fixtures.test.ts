import { AssertionError } from 'node:assert';
import { describe, expect, it } from 'vitest';
import {
  VFIO_MIGRATION_P2P,
  VFIO_MIGRATION_PRE_COPY,
  VFIO_MIGRATION_STOP_COPY,
  VFIO_PCI_NUM_REGIONS,
  VFIO_REGION_TYPE_PCI_VENDOR_TYPE,
  mockIommu,
  variantDriverConformance,
  vfioPciIndexToOffset,
  type BoundDevice,
  type ConformanceCase,
  type VariantDriverSubject,
} from '@vfiosim/core';
import { PLAIN_DRIVER, plainDriverPlugin } from '../pci-core/fixtures/plain-driver.js';
import { ACME_REGION_SIZE, ACME_REGION_SUBTYPE, VARIANT_DRIVER, acmePlugin } from '../pci-core/fixtures/variant-driver.js';
import { MIGRATING_DRIVER, MigratingDevice, migratingPlugin, type MigratingDriverBreak } from './fixtures/migrating-driver.js';

const BDF = '0000:00:02.0';
const ACME_REGION = vfioPciIndexToOffset(VFIO_PCI_NUM_REGIONS);

function register(cases: ConformanceCase[]): void {
  for (const c of cases) it(c.name, c.run);
}

/** The acme variant: a vendor region the reset clears, an emulated config register, a virtual PASID capability. */
const acmeSubject: VariantDriverSubject = {
  plugins: () => [mockIommu(), acmePlugin()],
  description: {
    devices: [{
      bdf: BDF,
      vendorId: 0x1af4,
      deviceId: 0x10f0,
      driver: VARIANT_DRIVER,
      bars: [{ index: 0, type: 'mem64', size: '16K' }, { index: 2, type: 'io', size: 32 }, { index: 4, type: 'mem32', size: '4K' }],
      romSize: '64K',
    }],
  },
  bdf: BDF,
  deviceRegions: [{ type: (VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1af4) >>> 0, subtype: ACME_REGION_SUBTYPE }],
  deviceState: {
    perturb(dev: BoundDevice) {
      expect(dev.user.proc.pwrite(dev.fd, new Uint8Array([1, 2, 3, 4]), ACME_REGION + 0x100n)).toBe(4);
    },
    assertReset(dev: BoundDevice) {
      const back = new Uint8Array(Number(ACME_REGION_SIZE));
      expect(dev.user.proc.pread(dev.fd, back, ACME_REGION)).toBe(back.length);
      if (back.some((byte) => byte !== 0)) throw new AssertionError({ message: 'the acme vendor region kept its bytes across the reset' });
    },
  },
};

function migratingSubject(flags: number, breaks: MigratingDriverBreak | null = null): VariantDriverSubject {
  return {
    plugins: () => [mockIommu(), migratingPlugin(flags, breaks)],
    description: {
      // No INTx pin: the interrupt cases go through MSI-X.
      devices: [{ bdf: BDF, vendorId: 0x15b3, deviceId: 0x101e, driver: MIGRATING_DRIVER, interruptPin: 0, capabilities: { msix: { tableSize: 8 } } }],
    },
    bdf: BDF,
    migration: { flags, arcs: (dev) => (dev.vdev as MigratingDevice).arcs },
  };
}

describe('variant driver conformance: a plain vfio-pci-core driver', () => {
  register(variantDriverConformance({
    plugins: () => [mockIommu(), plainDriverPlugin()],
    description: { devices: [{ bdf: BDF, vendorId: 0x8086, deviceId: 0x10fb, classCode: 0x020000, driver: PLAIN_DRIVER }] },
    bdf: BDF,
  }));
});

describe('variant driver conformance: the acme fixture variant (vendor region, reset hooks)', () => {
  register(variantDriverConformance(acmeSubject));
});

describe('variant driver conformance: a migration driver with STOP_COPY only', () => {
  register(variantDriverConformance(migratingSubject(VFIO_MIGRATION_STOP_COPY)));
});

describe('variant driver conformance: a migration driver with STOP_COPY, P2P and PRE_COPY', () => {
  register(variantDriverConformance(migratingSubject(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY)));
});

describe('the variant driver suite catches a driver that breaks a rule', () => {
  const ALL = VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY;

  function failure(subject: VariantDriverSubject, startsWith: string): AssertionError {
    const c = variantDriverConformance(subject).find((candidate) => candidate.name.startsWith(startsWith));
    if (!c) throw new Error(`no case named "${startsWith}..."`);
    try {
      c.run();
    } catch (error) {
      if (error instanceof AssertionError) return error;
      throw error;
    }
    throw new Error(`case "${c.name}" passed`);
  }

  it('fails the reset case for a migration driver whose reset leaves the state machine where it was', () => {
    const error = failure(migratingSubject(ALL, 'reset-keeps-state'), 'VFIO_DEVICE_RESET returns the migration state to RUNNING');
    expect(error.message).toContain('device_state: expected \'RUNNING\', got \'STOP\'');
  });

  it('fails the transition case for a driver that hands out no data fd, naming the arc', () => {
    const error = failure(migratingSubject(VFIO_MIGRATION_STOP_COPY, 'no-data-fd'), 'every transition the flags allow');
    expect(error.message).toMatch(/SET STOP_COPY from STOP.*data_fd is -1/s);
  });

  it('fails the transition case for a driver that jumps to the target instead of walking the kernel path', () => {
    const error = failure(migratingSubject(ALL, 'skips-arcs'), 'every transition the flags allow');
    expect(error.message).toContain('arcs the driver executed');
  });

  it('fails the region case when the subject declares regions the driver does not register', () => {
    const error = failure({ ...acmeSubject, deviceRegions: [] }, 'device-specific regions carry');
    expect(error.message).toContain('region types');
  });

  it('fails the reset case when the driver state survives the reset', () => {
    const subject: VariantDriverSubject = {
      ...acmeSubject,
      deviceState: {
        perturb: acmeSubject.deviceState!.perturb,
        assertReset: () => {
          throw new AssertionError({ message: 'state kept' });
        },
      },
    };
    expect(failure(subject, 'VFIO_DEVICE_RESET resets the function').message).toBe('state kept');
  });
});
