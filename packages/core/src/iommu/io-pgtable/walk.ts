import { IOMMU_READ, IOMMU_WRITE, type IommuTranslation } from '../iommu-driver.js';
import {
  IO_PGTABLE_IAS, IO_PGTABLE_LEVELS, PTE_DIRTY, PTE_PRESENT, PTE_WRITE,
  isLeaf, leafPageSize, levelIndex, pteAddress, ptePerm,
} from './pte.js';
import type { TableMemory } from './table-memory.js';

/*
 * The hardware table walks, as an IOMMU performs them on an IOTLB miss.
 *
 * walkTable:  one stage; every table address is an address of `mem`.
 * walkNested: stage 1 over stage 2. The stage-1 tables live in guest memory,
 *             so each stage-1 table address (an IPA) is first translated
 *             through stage 2 and the entry is then read from host physical
 *             memory; the stage-1 output (an IPA) goes through stage 2 too.
 *             A stage-2 miss on the way is a stage-2 fault at that IPA.
 *
 * Both write their result into a caller-owned IommuTranslation and do not
 * allocate. Permissions are not enforced here: the result carries what the
 * tables grant and the DMA engine decides.
 *
 * With `setDirty`, a walk for a write sets the dirty bit of the leaf it
 * ends on when the leaf grants write (what SMMUv3 HTTU or VT-d SSADS do
 * while dirty tracking is on).
 *
 * Public API: walkTable(), walkNested()
 */

const RW = IOMMU_READ | IOMMU_WRITE;

function fault(out: IommuTranslation, reason: IommuTranslation['fault'], addr: bigint): void {
  out.fault = reason;
  out.faultAddr = addr;
  out.perm = 0;
  out.pa = 0n;
  out.pageSize = 0n;
}

/** Walks the single-stage table at `root` for `iova`. */
export function walkTable(mem: TableMemory, root: bigint, iova: bigint, setDirty: boolean, out: IommuTranslation): void {
  if (iova < 0n || iova >> IO_PGTABLE_IAS !== 0n) {
    fault(out, 'not-present', iova);
    return;
  }
  let table = root;
  let perm = RW;
  for (let level = 0; level < IO_PGTABLE_LEVELS; level++) {
    const entryAddr = table + levelIndex(iova, level) * 8n;
    const pte = mem.readU64(entryAddr);
    if ((pte & PTE_PRESENT) === 0n) {
      fault(out, 'not-present', iova);
      return;
    }
    perm &= ptePerm(pte);
    if (isLeaf(pte, level)) {
      const size = leafPageSize(level)!;
      if (setDirty && (pte & PTE_WRITE) !== 0n && (pte & PTE_DIRTY) === 0n) mem.writeU64(entryAddr, pte | PTE_DIRTY);
      out.fault = null;
      out.faultAddr = 0n;
      out.pa = pteAddress(pte) & ~(size - 1n);
      out.pageSize = size;
      out.perm = perm;
      return;
    }
    table = pteAddress(pte);
  }
  fault(out, 'not-present', iova);
}

/**
 * Walks a stage-1 table whose root `s1Root` is an IPA, through the stage-2
 * table at host-physical `s2Root`. `phys` reads host physical memory;
 * `s2Scratch` is a second caller-owned result used for the stage-2 steps.
 */
export function walkNested(
  phys: TableMemory,
  s1Root: bigint,
  s2Root: bigint,
  iova: bigint,
  setDirty: boolean,
  out: IommuTranslation,
  s2Scratch: IommuTranslation,
): void {
  if (iova < 0n || iova >> IO_PGTABLE_IAS !== 0n) {
    fault(out, 'not-present', iova);
    return;
  }
  let table = s1Root;
  let perm = RW;
  let s1Size = 0n;
  let ipa = 0n;
  for (let level = 0; level < IO_PGTABLE_LEVELS && s1Size === 0n; level++) {
    const entryIpa = table + levelIndex(iova, level) * 8n;
    walkTable(phys, s2Root, entryIpa, false, s2Scratch);
    if (s2Scratch.fault !== null) {
      fault(out, 'stage2-not-present', entryIpa);
      return;
    }
    if ((s2Scratch.perm & IOMMU_READ) === 0) {
      fault(out, 'stage2-permission', entryIpa);
      return;
    }
    const pte = phys.readU64(s2Scratch.pa + (entryIpa & (s2Scratch.pageSize - 1n)));
    if ((pte & PTE_PRESENT) === 0n) {
      fault(out, 'not-present', iova);
      return;
    }
    perm &= ptePerm(pte);
    if (isLeaf(pte, level)) {
      s1Size = leafPageSize(level)!;
      ipa = (pteAddress(pte) & ~(s1Size - 1n)) + (iova & (s1Size - 1n));
    } else {
      table = pteAddress(pte);
    }
  }
  if (s1Size === 0n) {
    fault(out, 'not-present', iova);
    return;
  }
  walkTable(phys, s2Root, ipa, setDirty && (perm & IOMMU_WRITE) !== 0, s2Scratch);
  if (s2Scratch.fault !== null) {
    fault(out, 'stage2-not-present', ipa);
    return;
  }
  const size = s1Size < s2Scratch.pageSize ? s1Size : s2Scratch.pageSize;
  const paOfIova = s2Scratch.pa + (ipa & (s2Scratch.pageSize - 1n));
  out.fault = null;
  out.faultAddr = 0n;
  out.pageSize = size;
  out.pa = paOfIova - (iova & (size - 1n));
  out.perm = perm & s2Scratch.perm;
}
