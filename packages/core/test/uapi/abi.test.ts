import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as core from '@vfiosim/core';
import {
  _IO,
  _IOC_NR,
  _IOC_TYPE,
  offsetofEnd,
  uapiLayouts,
  uapiStructs,
  type StructCodec,
} from '@vfiosim/core';

interface FactField {
  name: string;
  offset: number;
  size?: number;
  array_len?: number;
  elem_size?: number;
  flexible_array?: boolean;
  in_anonymous_union?: boolean;
}
interface FactStruct {
  size: number;
  align: number;
  header: string;
  fields: FactField[];
}
interface Facts {
  structs: Record<string, FactStruct>;
  ioctls: Record<string, number>;
  constants: Record<string, number>;
  ioctl_min_sizes: Record<'iommufd' | 'vfio', Record<string, { struct: string; last_required_field: string; min_size: number; struct_size: number }>>;
}

// Read the facts file itself, not through the module under test.
const facts = JSON.parse(
  readFileSync(new URL('../../src/uapi/facts/linux-uapi-facts.json', import.meta.url), 'utf8'),
) as Facts;

const exported = core as unknown as Record<string, unknown>;

/** The codec's layout in the facts file's own vocabulary. */
function asFacts(codec: StructCodec<unknown>): Omit<FactStruct, 'header'> {
  return {
    size: codec.size,
    align: codec.align,
    fields: codec.fields.map((f) => ({
      name: f.name,
      offset: f.offset,
      ...(f.flexible ? {} : { size: f.size }),
      ...(f.arrayLen !== undefined ? { array_len: f.arrayLen } : {}),
      ...(f.flexible ? { flexible_array: true } : {}),
      ...(f.elemSize !== undefined ? { elem_size: f.elemSize } : {}),
      ...(f.inAnonymousUnion ? { in_anonymous_union: true } : {}),
    })),
  };
}

describe('struct layouts match the kernel headers compiled on x86-64', () => {
  it('covers all 86 structs of the facts', () => {
    expect(Object.keys(facts.structs)).toHaveLength(86);
    expect(Object.keys(uapiStructs).sort()).toEqual(Object.keys(facts.structs).sort());
  });

  for (const [name, fact] of Object.entries(facts.structs)) {
    it(`lays out struct ${name} as ${fact.header} does`, () => {
      const codec = exported[name] as StructCodec<unknown> | undefined;
      expect(codec, `${name} is not exported`).toBeDefined();
      expect(codec!.name).toBe(name);
      expect(codec!.cName).toBe(`struct ${name}`);
      const { header: _header, ...layout } = fact;
      expect(asFacts(codec!)).toEqual(layout);
    });
  }

  it('reports the same sizes and offsets through uapiLayouts()', () => {
    const layouts = uapiLayouts();
    expect(Object.keys(layouts).sort()).toEqual(Object.keys(facts.structs).sort());
    for (const [name, fact] of Object.entries(facts.structs)) {
      expect(layouts[name], name).toEqual({
        size: fact.size,
        fields: fact.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size ?? 0 })),
      });
    }
  });

  it('places every flexible array member at the end of its struct', () => {
    for (const codec of Object.values(uapiStructs) as StructCodec<unknown>[]) {
      if (codec.flexible) expect(codec.flexible.offset, codec.name).toBe(codec.size);
    }
  });
});

describe('ioctl minimum sizes', () => {
  for (const family of ['iommufd', 'vfio'] as const) {
    for (const [ioctl, row] of Object.entries(facts.ioctl_min_sizes[family])) {
      it(`${ioctl}: offsetofend(${row.struct}, ${row.last_required_field}) is ${row.min_size}`, () => {
        const codec = exported[row.struct] as StructCodec<Record<string, unknown>>;
        expect(codec.size).toBe(row.struct_size);
        expect(offsetofEnd(codec, row.last_required_field)).toBe(row.min_size);
      });
    }
  }
});

describe('constants and request numbers', () => {
  it('exports every constant of the facts with its value', () => {
    for (const [name, value] of Object.entries(facts.constants)) {
      expect(exported[name], name).toBe(value);
    }
  });

  it('exports every ioctl request number of the facts', () => {
    for (const [name, value] of Object.entries(facts.ioctls)) {
      expect(exported[name], name).toBe(value);
    }
  });

  it('encodes VFIO requests as _IO(VFIO_TYPE, VFIO_BASE + n)', () => {
    expect(_IO(core.VFIO_TYPE, core.VFIO_BASE + 0)).toBe(0x3b64);
    expect(core.VFIO_GET_API_VERSION).toBe(0x3b64);
    expect(core.VFIO_DEVICE_GET_INFO).toBe(0x3b6b);
    expect(core.VFIO_DEVICE_FEATURE).toBe(_IO(';'.charCodeAt(0), 100 + 17));
    for (const [name, value] of Object.entries(facts.ioctls)) {
      if (!name.startsWith('VFIO_')) continue;
      expect(_IOC_TYPE(value), name).toBe(core.VFIO_TYPE);
      expect(_IOC_NR(value) - core.VFIO_BASE, name).toBeGreaterThanOrEqual(0);
      expect(_IOC_NR(value) - core.VFIO_BASE, name).toBeLessThanOrEqual(21);
      expect(value >>> 16, `${name} carries no size or direction`).toBe(0);
    }
  });

  it('encodes every iommufd request as _IO(IOMMUFD_TYPE, IOMMUFD_CMD_*)', () => {
    const iommuNames = Object.keys(facts.ioctls).filter((n) => n.startsWith('IOMMU_'));
    expect(iommuNames).toHaveLength(21);
    for (const name of iommuNames) {
      const cmd = facts.constants[`IOMMUFD_CMD_${name.slice('IOMMU_'.length)}`];
      expect(cmd, `IOMMUFD_CMD for ${name}`).toBeDefined();
      expect(facts.ioctls[name], name).toBe(_IO(core.IOMMUFD_TYPE, cmd!));
    }
    expect(core.IOMMU_IOAS_MAP).toBe(0x3b85);
  });

  it('keeps the request numbers VFIO shares between device and container fds', () => {
    expect(core.VFIO_IOMMU_GET_INFO).toBe(core.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO);
    expect(core.VFIO_IOMMU_SPAPR_TCE_GET_INFO).toBe(core.VFIO_IOMMU_GET_INFO);
    expect(core.VFIO_IOMMU_MAP_DMA).toBe(core.VFIO_DEVICE_PCI_HOT_RESET);
    expect(core.VFIO_EEH_PE_OP).toBe(core.VFIO_MIG_GET_PRECOPY_INFO);
  });
});

describe('migration facts', () => {
  const states = [
    'VFIO_DEVICE_STATE_ERROR', 'VFIO_DEVICE_STATE_STOP', 'VFIO_DEVICE_STATE_RUNNING', 'VFIO_DEVICE_STATE_STOP_COPY',
    'VFIO_DEVICE_STATE_RESUMING', 'VFIO_DEVICE_STATE_RUNNING_P2P', 'VFIO_DEVICE_STATE_PRE_COPY',
    'VFIO_DEVICE_STATE_PRE_COPY_P2P',
  ];

  it('gives a next step for every pair of the eight states of enum vfio_device_mig_state', () => {
    expect(Object.keys(core.migStateTransitions).sort()).toEqual([...states].sort());
    for (const [cur, row] of Object.entries(core.migStateTransitions)) {
      expect(Object.keys(row).sort(), cur).toEqual([...states].sort());
      for (const next of Object.values(row)) expect(states).toContain(next);
    }
    expect(states.map((s) => exported[s])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('goes RUNNING -> STOP through RUNNING_P2P and STOP -> RUNNING likewise', () => {
    expect(core.migStateTransitions.VFIO_DEVICE_STATE_RUNNING.VFIO_DEVICE_STATE_STOP).toBe('VFIO_DEVICE_STATE_RUNNING_P2P');
    expect(core.migStateTransitions.VFIO_DEVICE_STATE_STOP.VFIO_DEVICE_STATE_RUNNING).toBe('VFIO_DEVICE_STATE_RUNNING_P2P');
  });

  it('requires the VFIO_MIGRATION_* flags of each state as masks built from the constants', () => {
    const required = core.migStateFlagsValidity.required_flags;
    expect(required.VFIO_DEVICE_STATE_PRE_COPY_P2P.mask)
      .toBe(core.VFIO_MIGRATION_STOP_COPY | core.VFIO_MIGRATION_P2P | core.VFIO_MIGRATION_PRE_COPY);
    expect(required.VFIO_DEVICE_STATE_RUNNING_P2P.mask).toBe(core.VFIO_MIGRATION_STOP_COPY | core.VFIO_MIGRATION_P2P);
    expect(core.vfioDeviceFeatureMinData.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE.min_data)
      .toBe(core.vfio_device_feature_mig_state.size);
    expect(core.ioctlMinSizes.iommufd.IOMMU_HWPT_ALLOC.min_size).toBe(24);
  });

  it('is read-only for every layer that shares it', () => {
    expect(Object.isFrozen(core.migStateTransitions.VFIO_DEVICE_STATE_STOP)).toBe(true);
    expect(() => {
      (core.ioctlMinSizes.vfio.VFIO_DEVICE_GET_INFO as { min_size: number }).min_size = 0;
    }).toThrow(TypeError);
  });
});
