import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { composeStack } from '../src/compose.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const source = readFileSync(new URL('../src/compose.ts', import.meta.url), 'utf8');

describe('the README\'s compose example', () => {
  it('allocates an IOAS with a raw ioctl and binds the device through the helper', () => {
    const result = composeStack();
    expect(result.rc).toBe(0);
    expect(result.out_ioas_id).toBeGreaterThan(0);
    expect(result.devid).toBeGreaterThan(0);
    // BARs 0-5, ROM, config, VGA: vfio-pci's fixed regions.
    expect(result.numRegions).toBe(9);
  });

  it('is what the README shows', () => {
    const shown = /README:begin\n([\s\S]*?)\/\/ README:end/.exec(source)![1]!;
    expect(readme).toContain(shown.trim());
  });
});
