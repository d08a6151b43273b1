export { IoPageTable } from './io-pgtable.js';
export {
  BLOCK_1G, BLOCK_2M, IO_PGTABLE_IAS, IO_PGTABLE_LEVELS, IO_PGTABLE_PGSIZES, PAGE_4K,
  PTE_ADDR_MASK, PTE_BLOCK, PTE_DIRTY, PTE_PRESENT, PTE_READ, PTE_WRITE,
  isLeaf, leafPageSize, levelIndex, levelShift, makeLeafPte, makeTablePte, pteAddress, ptePerm,
} from './pte.js';
export {
  TABLE_GRANULE, physReadU64, physTableMemory, physWriteU64, readLe64, writeLe64, type TableMemory,
} from './table-memory.js';
export { walkNested, walkTable } from './walk.js';
