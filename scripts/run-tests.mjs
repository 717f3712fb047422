// Runs every compiled test file (dist/**/*.test.js) with node's built-in test runner.
// Node 20's `node --test` takes no globs, so the list is gathered here.
// Usage: node scripts/run-tests.mjs [substring…]  (only files whose path contains one of them)
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const filters = process.argv.slice(2);
const files = findTests('dist')
  .filter((file) => !file.startsWith(join('dist', 'node_modules')))
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort();
if (files.length === 0) {
  console.error(`run-tests: no test files found under dist/${filters.length ? ` matching ${filters.join(', ')}` : ''}; run 'npm run build' first`);
  process.exit(1);
}
console.log(`run-tests: ${files.length} test files: ${files.map((f) => relative('dist', f)).join(' ')}`);
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
