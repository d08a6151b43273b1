import type { VfioDma } from './vfio-dma.js';

/** One tree node: AVL height for balance, subtree count for positional lookups. */
interface Node {
  readonly dma: VfioDma;
  left: Node | null;
  right: Node | null;
  height: number;
  count: number;
}

/**
 * The container's mappings ordered by IOVA (the kernel's dma_list rb-tree).
 * Mappings never overlap (MAP_DMA refuses an overlapping range before it
 * inserts), so ordering by start orders by end too and every IOVA is the
 * start of at most one mapping.
 *
 * An AVL tree whose nodes also count their subtree: insert, remove, the
 * overlap lookups and positional access are O(log n) and a range walk is
 * O(log n + k), so MAP_DMA and UNMAP_DMA cost the same with 100k mappings
 * live as with a thousand, as they do on the kernel's rb-tree.
 *
 * All ranges are handled through inclusive ends so that a mapping reaching
 * the top of the 64-bit IOVA space compares correctly.
 */
export class DmaTree {
  #root: Node | null = null;

  get size(): number {
    return count(this.#root);
  }

  /** The mappings in IOVA order; a copy, so callers may remove while iterating. */
  list(): VfioDma[] {
    const out: VfioDma[] = [];
    const stack: Node[] = [];
    let node = this.#root;
    while (node || stack.length > 0) {
      for (; node; node = node.left) stack.push(node);
      const next = stack.pop()!;
      out.push(next.dma);
      node = next.right;
    }
    return out;
  }

  /** vfio_find_dma(): some mapping that overlaps [start, start + size), or undefined; `size` must not be 0. */
  find(start: bigint, size: bigint): VfioDma | undefined {
    const last = start + size - 1n;
    let node = this.#root;
    while (node) {
      const dma = node.dma;
      if (last < dma.iova) node = node.left;
      else if (start > dma.last) node = node.right;
      else return dma;
    }
    return undefined;
  }

  /** The mappings that overlap [start, last], in IOVA order. */
  inRange(start: bigint, last: bigint): VfioDma[] {
    const out: VfioDma[] = [];
    // The stack holds, bottom to top, the pending nodes in descending order; its top is the next in order.
    const stack: Node[] = [];
    let node = this.#root;
    while (node) {
      if (node.dma.last < start) {
        node = node.right;
      } else {
        stack.push(node);
        node = node.left;
      }
    }
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (next.dma.iova > last) break;
      out.push(next.dma);
      for (let child = next.right; child; child = child.left) stack.push(child);
    }
    return out;
  }

  /** Adds a mapping that overlaps none in the tree. */
  insert(dma: VfioDma): void {
    this.#root = insertNode(this.#root, dma);
  }

  /** Removes this very mapping; another mapping at the same IOVA, or none, leaves the tree as it is. */
  remove(dma: VfioDma): void {
    this.#root = removeNode(this.#root, dma);
  }
}

function count(node: Node | null): number {
  return node ? node.count : 0;
}

function height(node: Node | null): number {
  return node ? node.height : 0;
}

function update(node: Node): void {
  node.height = Math.max(height(node.left), height(node.right)) + 1;
  node.count = count(node.left) + count(node.right) + 1;
}

function rotateRight(node: Node): Node {
  const pivot = node.left!;
  node.left = pivot.right;
  pivot.right = node;
  update(node);
  update(pivot);
  return pivot;
}

function rotateLeft(node: Node): Node {
  const pivot = node.right!;
  node.right = pivot.left;
  pivot.left = node;
  update(node);
  update(pivot);
  return pivot;
}

/** Restores the AVL property at `node` after one of its subtrees changed height by one. */
function rebalance(node: Node): Node {
  update(node);
  const balance = height(node.left) - height(node.right);
  if (balance > 1) {
    if (height(node.left!.left) < height(node.left!.right)) node.left = rotateLeft(node.left!);
    return rotateRight(node);
  }
  if (balance < -1) {
    if (height(node.right!.right) < height(node.right!.left)) node.right = rotateRight(node.right!);
    return rotateLeft(node);
  }
  return node;
}

function insertNode(node: Node | null, dma: VfioDma): Node {
  if (!node) return { dma, left: null, right: null, height: 1, count: 1 };
  if (dma.iova <= node.dma.iova) node.left = insertNode(node.left, dma);
  else node.right = insertNode(node.right, dma);
  return rebalance(node);
}

function removeNode(node: Node | null, dma: VfioDma): Node | null {
  if (!node) return null;
  if (dma.iova < node.dma.iova) {
    node.left = removeNode(node.left, dma);
  } else if (dma.iova > node.dma.iova) {
    node.right = removeNode(node.right, dma);
  } else {
    if (node.dma !== dma) return node;
    if (!node.left) return node.right;
    if (!node.right) return node.left;
    // Two children: the in-order successor takes this node's place.
    let successor = node.right;
    while (successor.left) successor = successor.left;
    const right = removeNode(node.right, successor.dma);
    return rebalance({ dma: successor.dma, left: node.left, right, height: 0, count: 0 });
  }
  return rebalance(node);
}
