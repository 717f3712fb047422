// Runs every compiled test file (dist/**/*.test.js) with node's built-in test runner.
// Node 20's `node --test` takes no globs, so the list is gathered here.
// Usage: node scripts/run-tests.mjs [substring…]  (only files whose path contains one of them)
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { clearTimeout, setTimeout } from 'node:timers';

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
// --test-force-exit: a test file whose failing test left a socket or server open would
// otherwise keep its process (and CI) waiting forever. --test-timeout bounds any one test;
// the slowest (an ansible --check run, the 240-seed swarm) take about 30 s here.
// The watchdog bounds the whole run, well inside CI's limit, and says so when it fires.
const TEST_TIMEOUT_MS = 300_000;
const WHOLE_RUN_TIMEOUT_MS = 40 * 60_000;
// The runner gets its own process group so the watchdog can stop it with every test
// file and every relay, coordinator or proxy those files started.
const runner = spawn(
  process.execPath,
  ['--test', '--test-force-exit', `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit', detached: true },
);
const watchdog = setTimeout(() => {
  console.error(`run-tests: the test run did not finish within ${WHOLE_RUN_TIMEOUT_MS / 60_000} min; stopping it and every process it started`);
  try {
    process.kill(-runner.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}, WHOLE_RUN_TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    try {
      process.kill(-runner.pid, signal);
    } catch {
      // already gone
    }
  });
}
runner.on('exit', (code, signal) => {
  clearTimeout(watchdog);
  process.exit(code ?? (signal ? 1 : 0));
});
