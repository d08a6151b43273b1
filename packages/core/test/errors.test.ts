import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Errno, errnoName, errorCatalog, SimError, syscall } from '@vfiosim/core';

describe('error catalog', () => {
  it('documents every code in docs/errors.md with its errno', () => {
    const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    const documented = new Map(
      [...doc.matchAll(/^\| `([A-Z0-9_]+)` \| `(E[A-Z0-9]+)` \|/gm)].map((m) => [m[1], m[2]]),
    );
    const cataloged = new Map(Object.entries(errorCatalog).map(([code, e]) => [code, e.errno]));
    expect(documented).toEqual(cataloged);
  });

  it('maps every catalog errno to a Linux number', () => {
    for (const [code, entry] of Object.entries(errorCatalog)) {
      expect(Errno[entry.errno], code).toBeGreaterThan(0);
      expect(entry.doc.length, code).toBeGreaterThan(10);
    }
  });

  it('uses the x86-64 numbers for the errnos VFIO answers with', () => {
    expect([Errno.EPERM, Errno.ENOENT, Errno.EBADF, Errno.EFAULT, Errno.EBUSY, Errno.EINVAL, Errno.ENOTTY, Errno.ENOSPC])
      .toEqual([1, 2, 9, 14, 16, 22, 25, 28]);
    expect([Errno.E2BIG, Errno.EOPNOTSUPP, Errno.EOVERFLOW, Errno.ENODEV]).toEqual([7, 95, 75, 19]);
    expect(errnoName(-22)).toBe('EINVAL');
  });

  it('turns a thrown SimError into -errno at the syscall boundary', () => {
    expect(syscall(() => { throw new SimError('ARG_TAIL_NONZERO', 'tail'); })).toBe(-7);
    expect(syscall(() => 3)).toBe(3);
    expect(() => syscall(() => { throw new TypeError('model bug'); })).toThrow(TypeError);
  });
});
