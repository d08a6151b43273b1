import { defineProject } from 'vitest/config';

// Tests import workspace packages from their TypeScript source through the
// "vfiosim-source" export condition, so `vitest` never waits on a build.
const conditions = ['vfiosim-source', 'import', 'module', 'node', 'default'];

export function project(name: string) {
  return defineProject({
    resolve: { conditions },
    ssr: { resolve: { conditions } },
    test: { name, include: ['test/**/*.test.ts'], environment: 'node' },
  });
}
