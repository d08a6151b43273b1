import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AddressSpace, Process } from '@vfiosim/core';
// DmaTree is internal to the type1 back end (not exported by the package); it is tested directly here.
import { DmaTree } from '../../src/iommu/type1/dma-tree.js';
import { VfioDma } from '../../src/iommu/type1/vfio-dma.js';

const U64_MAX = (1n << 64n) - 1n;
const PAGE = 0x1000n;

function mapping(iova: bigint, size: bigint): VfioDma {
  const dma = new VfioDma(iova, 0n, 3, {} as Process, {} as AddressSpace);
  dma.size = size;
  return dma;
}

/** The reference: the mappings in a plain array kept sorted by IOVA, every query a linear scan. */
class SortedArrayModel {
  readonly dmas: VfioDma[] = [];

  overlapping(start: bigint, last: bigint): VfioDma[] {
    return this.dmas.filter((d) => d.iova <= last && d.last >= start);
  }

  insert(dma: VfioDma): void {
    const at = this.dmas.findIndex((d) => d.iova > dma.iova);
    this.dmas.splice(at < 0 ? this.dmas.length : at, 0, dma);
  }

  remove(dma: VfioDma): void {
    const at = this.dmas.indexOf(dma);
    if (at >= 0) this.dmas.splice(at, 1);
  }
}

/**
 * Ranges in a small page-granular window so that operations collide often,
 * plus a few at the top of the 64-bit space, where an exclusive end would
 * overflow.
 */
const rangeArb = fc.oneof(
  { weight: 4, arbitrary: fc.record({ page: fc.integer({ min: 0, max: 63 }), pages: fc.integer({ min: 1, max: 6 }) })
    .map(({ page, pages }) => ({ start: BigInt(page) * PAGE, size: BigInt(pages) * PAGE })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 })
    .map((pages) => ({ start: U64_MAX + 1n - BigInt(pages) * PAGE, size: BigInt(pages) * PAGE })) },
);

/** Query ranges may also end on the first byte of a page or start on the last byte of one, where a mapping just begins or ends. */
const queryRangeArb = fc.tuple(rangeArb, fc.constantFrom(0n, 1n), fc.constantFrom(0n, 1n)).map(([r, growEnd, growStart]) => {
  const start = r.start >= growStart ? r.start - growStart : r.start;
  const last = r.start + r.size - 1n + growEnd;
  return { start, size: (last > U64_MAX ? U64_MAX : last) - start + 1n };
});

type Op =
  | { kind: 'insert'; start: bigint; size: bigint }
  | { kind: 'remove'; pick: number }
  | { kind: 'removeStranger'; start: bigint; size: bigint }
  | { kind: 'query'; start: bigint; size: bigint };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: rangeArb.map((r) => ({ kind: 'insert' as const, ...r })) },
  { weight: 3, arbitrary: fc.nat().map((pick) => ({ kind: 'remove' as const, pick })) },
  { weight: 1, arbitrary: rangeArb.map((r) => ({ kind: 'removeStranger' as const, ...r })) },
  { weight: 3, arbitrary: queryRangeArb.map((r) => ({ kind: 'query' as const, ...r })) },
);

function expectSameAnswers(tree: DmaTree, model: SortedArrayModel, start: bigint, size: bigint): void {
  const last = start + size - 1n;
  const overlapping = model.overlapping(start, last);
  expect(tree.size).toBe(model.dmas.length);
  expect(tree.list()).toEqual(model.dmas);
  expect(tree.inRange(start, last)).toEqual(overlapping);
  const found = tree.find(start, size);
  if (overlapping.length === 0) expect(found).toBeUndefined();
  else expect(overlapping).toContain(found);
}

describe('DmaTree', () => {
  it('answers every lookup as a sorted array does, over random insert and remove sequences', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
        const tree = new DmaTree();
        const model = new SortedArrayModel();
        for (const op of ops) {
          switch (op.kind) {
            case 'insert': {
              // Like MAP_DMA: an overlapping range is refused before the tree is touched.
              if (model.overlapping(op.start, op.start + op.size - 1n).length > 0) break;
              const dma = mapping(op.start, op.size);
              tree.insert(dma);
              model.insert(dma);
              break;
            }
            case 'remove': {
              if (model.dmas.length === 0) break;
              const dma = model.dmas[op.pick % model.dmas.length]!;
              tree.remove(dma);
              model.remove(dma);
              break;
            }
            case 'removeStranger': {
              // A mapping that is not in the tree, possibly at the IOVA of one that is: nothing changes.
              const stranger = mapping(op.start, op.size);
              tree.remove(stranger);
              model.remove(stranger);
              break;
            }
            case 'query':
              expectSameAnswers(tree, model, op.start, op.size);
              break;
          }
        }
        expectSameAnswers(tree, model, 0n, U64_MAX + 1n);
      }),
      { seed: 0x7fa1, numRuns: 300 },
    );
  });

  it('stays in step with a sorted array through thousands of mappings inserted in and against IOVA order', () => {
    const tree = new DmaTree();
    const model = new SortedArrayModel();
    const n = 4096;
    // Ascending then descending inserts are the sequences that unbalance a plain search tree.
    const order = [...Array.from({ length: n / 2 }, (_, i) => i), ...Array.from({ length: n / 2 }, (_, i) => n - 1 - i)];
    for (const i of order) {
      const dma = mapping(BigInt(i) * 2n * PAGE, PAGE);
      tree.insert(dma);
      model.insert(dma);
    }
    for (const dma of model.dmas.filter((_, i) => i % 3 === 0)) {
      tree.remove(dma);
      model.remove(dma);
    }
    expectSameAnswers(tree, model, 0n, U64_MAX + 1n);
    for (let i = 0; i < 64; i++) {
      const start = BigInt(i * 97) * PAGE;
      expectSameAnswers(tree, model, start, 5n * PAGE);
    }
  });
});
