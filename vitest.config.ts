import { defineConfig } from 'vitest/config';

// Each package is its own vitest project; tests import packages from source
// through the "vfiosim-source" export condition so no build is needed first.
export default defineConfig({
  test: {
    projects: ['packages/*', 'examples'],
  },
});
