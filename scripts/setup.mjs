// Brings a fresh clone to a runnable state with nothing but Node and npm:
// installs the workspace with a pinned pnpm, then type-checks and builds
// every package (tsc -b follows the project references in dependency order).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pnpm = ['-y', 'pnpm@10.34.8'];
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

const installed = existsSync(join(root, 'node_modules/.modules.yaml'));
if (!installed || process.env.CI) {
  run('npx', [...pnpm, 'install', '--reporter=append-only']);
}
run(join(root, 'node_modules/.bin/tsc'), ['-b', 'tsconfig.build.json']);
