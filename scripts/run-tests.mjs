// Runs every compiled test file (dist/**/*.test.js) with node's built-in test runner.
// Node 20's `node --test` takes no globs, so the list is gathered here.
// Usage: node scripts/run-tests.mjs [--tier=unit|sim|e2e] [substring…]
//   substrings: only files whose path contains one of them;
//   --tier: only one tier (npm run test:unit, test:sim, test:e2e), told apart by what a
//   file uses, so a new test lands in its tier without a list to keep:
//   - e2e: starts real processes or opens real sockets (the CLI, a local fleet, dgram,
//     net, http, child_process, Redis, a browser);
//   - sim: otherwise runs the simulator (anything under sim/src, or a sim/ test);
//   - unit: everything else (cores, codecs, parsers in memory).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
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

const TIERS = ['unit', 'sim', 'e2e'];
const E2E_MARKS = /from ['"]node:(?:dgram|net|http|https|child_process)['"]|from ['"](?:ioredis|playwright-core)['"]|\/udp-transport\.js['"]/;
const SIM_MARKS = /['"](?:\.\.\/)+sim\/src\//;

/**
 * A test file's text with that of the test support modules it imports (relative
 * imports into a `test/` folder, followed transitively), so a test that starts Redis
 * or a fleet through a helper is known by what the helper does.
 */
function testTexts(file, seen = new Set()) {
  if (seen.has(file)) return '';
  seen.add(file);
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  let all = text;
  for (const m of text.matchAll(/from ['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = join(dirname(file), m[1]);
    if (target.split(sep).includes('test')) all += testTexts(target, seen);
  }
  return all;
}

/** The tier of a compiled test file (see the header). */
function tierOf(file) {
  const text = testTexts(file);
  if (E2E_MARKS.test(text)) return 'e2e';
  if (relative('dist', file).split(sep)[0] === 'sim' || SIM_MARKS.test(text)) return 'sim';
  return 'unit';
}

const args = process.argv.slice(2);
const tierArg = args.find((a) => a.startsWith('--tier='));
const tier = tierArg?.slice('--tier='.length);
if (tier !== undefined && !TIERS.includes(tier)) {
  console.error(`run-tests: --tier=${tier} is not a tier; expected one of ${TIERS.join(', ')}`);
  process.exit(2);
}
const filters = args.filter((a) => !a.startsWith('--tier='));
const files = findTests('dist')
  .filter((file) => !file.startsWith(join('dist', 'node_modules')))
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .filter((file) => tier === undefined || tierOf(file) === tier)
  .sort();
if (files.length === 0) {
  console.error(`run-tests: no test files found under dist/${filters.length ? ` matching ${filters.join(', ')}` : ''}${tier ? ` in tier ${tier}` : ''}; run 'npm run build' first`);
  process.exit(1);
}
console.log(`run-tests: ${files.length} test files${tier ? ` (tier ${tier})` : ''}: ${files.map((f) => relative('dist', f)).join(' ')}`);
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
