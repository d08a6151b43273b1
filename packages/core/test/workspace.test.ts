import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/*
 * The workspace contract of the README's quick start: tests run every
 * package from its TypeScript source, while plain `node` (no loader, no
 * custom conditions) must land on the JavaScript `tsc -b` emits. A package
 * whose exports map or tsconfig drifts from that still passes every other
 * test here, since vitest resolves the source condition, so this checks
 * the wiring itself.
 */

const root = new URL('../../../', import.meta.url);
const readJson = (path: string) => JSON.parse(readFileSync(new URL(path, root), 'utf8')) as Record<string, unknown>;

const packageDirs = readdirSync(new URL('packages/', root), { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(new URL(`packages/${entry.name}/package.json`, root)))
  .map((entry) => `packages/${entry.name}`);

describe('the workspace', () => {
  it('finds the packages the layout names', () => {
    expect(packageDirs).toEqual(expect.arrayContaining(['packages/core', 'packages/vfio-pci']));
  });

  for (const dir of packageDirs) {
    it(`${dir}: is an ESM package whose exports give plain node the built files and vitest the source`, () => {
      const pkg = readJson(`${dir}/package.json`);
      expect(pkg.type).toBe('module');
      const dot = (pkg.exports as Record<string, Record<string, string>>)['.'];
      // Order matters: node takes the first condition it knows, and it knows neither of the first two.
      expect(Object.entries(dot)).toEqual([
        ['vfiosim-source', './src/index.ts'],
        ['types', './dist/index.d.ts'],
        ['default', './dist/index.js'],
      ]);
      expect(existsSync(new URL(`${dir}/src/index.ts`, root))).toBe(true);
      expect(pkg.files).toEqual(['dist']);
    });

    it(`${dir}: builds src to dist as a composite project under the strict base config`, () => {
      const tsconfig = readJson(`${dir}/tsconfig.json`);
      expect(tsconfig.extends).toBe('../../tsconfig.base.json');
      expect(tsconfig.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    });
  }

  it('type-checks strictly as NodeNext ESM with composite projects', () => {
    const base = readJson('tsconfig.base.json').compilerOptions as Record<string, unknown>;
    expect(base).toMatchObject({ strict: true, composite: true, declaration: true, module: 'NodeNext', moduleResolution: 'NodeNext', verbatimModuleSyntax: true });
  });

  it('builds every package and the examples through the root project references', () => {
    const build = readJson('tsconfig.build.json');
    const refs = (build.references as { path: string }[]).map((r) => r.path);
    expect(refs).toEqual(expect.arrayContaining([...packageDirs, 'examples']));
    expect(build.files).toEqual([]);
  });

  it('sets itself up in npm test and npm run demo, and CI runs npm test', () => {
    const scripts = readJson('package.json').scripts as Record<string, string>;
    expect(scripts.test).toMatch(/^node scripts\/setup\.mjs && vitest run$/);
    expect(scripts.demo).toMatch(/^node scripts\/setup\.mjs && node examples\/dist\/demo\.js$/);
    const ci = readFileSync(new URL('.ci/run', root), 'utf8');
    expect(ci.split('\n').filter((line) => line.trim() && !line.startsWith('#'))).toContain('npm test');
  });

  it('lists every package as a vitest project', () => {
    const config = readFileSync(new URL('vitest.config.ts', root), 'utf8');
    expect(config).toMatch(/projects:\s*\['packages\/\*', 'examples'\]/);
  });
});
