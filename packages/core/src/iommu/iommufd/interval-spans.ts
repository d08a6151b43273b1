/** An inclusive range of IOVAs, [start, last], as the kernel's interval trees store it. */
export interface IovaRange {
  readonly start: bigint;
  readonly last: bigint;
}

/** One step of interval_tree_for_each_span(): a maximal run that is either covered or a hole. */
export interface IovaSpan extends IovaRange {
  readonly used: boolean;
}

/** Whether [a.start, a.last] and [start, last] share an IOVA. */
export function intersects(a: IovaRange, start: bigint, last: bigint): boolean {
  return a.start <= last && start <= a.last;
}

/**
 * Walks [first, last] the way interval_tree_for_each_span() does over any
 * number of trees at once (interval_tree_for_each_double_span() is the
 * two-tree case): overlapping and touching nodes fuse into one used span,
 * everything between them is a hole, and both are clipped to the window.
 */
export function spans(trees: readonly (readonly IovaRange[])[], first: bigint, last: bigint): IovaSpan[] {
  const nodes = trees
    .flat()
    .filter((node) => intersects(node, first, last))
    .map((node) => ({ start: node.start < first ? first : node.start, last: node.last > last ? last : node.last }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));

  const out: IovaSpan[] = [];
  let cursor = first;
  let done = false;
  let i = 0;
  while (!done && i < nodes.length) {
    const head = nodes[i]!;
    if (head.start > cursor) out.push({ start: cursor, last: head.start - 1n, used: false });
    let usedLast = head.last;
    i++;
    while (i < nodes.length && nodes[i]!.start <= usedLast + 1n) {
      if (nodes[i]!.last > usedLast) usedLast = nodes[i]!.last;
      i++;
    }
    out.push({ start: head.start < cursor ? cursor : head.start, last: usedLast, used: true });
    if (usedLast >= last) done = true;
    else cursor = usedLast + 1n;
  }
  if (!done) out.push({ start: cursor, last, used: false });
  return out;
}
