// Runs every compiled test file (dist/**/*.test.js) with node's built-in test runner.
// The list is gathered here (substring and tier filters).
// Usage: node scripts/run-tests.mjs [--tier=unit|sim|e2e] [substring…]
//   substrings: only files whose path contains one of them;
//   --tier: only one tier (npm run test:unit, test:sim, test:e2e), told apart by what a
//   file uses, so a new test lands in its tier without a list to keep:
//   - e2e: starts real processes or opens real sockets (the CLI, a local fleet, dgram,
//     net, http, child_process, Redis, a browser);
//   - sim: otherwise runs the simulator (anything under sim/src, or a sim/ test);
//   - unit: everything else (cores, codecs, parsers in memory).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { spawn } from 'node:child_process';
import { clearTimeout, setTimeout } from 'node:timers';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { KEPT_ALIVE_EXIT_CODE } from './test-exit-guard.mjs';

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
// No --test-force-exit: with several files at once it can drop a file's last verdicts
// (nodejs/node#64833). Instead every test file's process gets scripts/test-exit-guard.mjs,
// which fails a file still alive 20 s (TEST_EXIT_GRACE_MS there) after its tests and after() hooks
// finished, naming the file and the handles that hold it; and a second reporter
// (scripts/test-files-reporter.mjs) writes which files sent the summary of their verdicts,
// checked below against the files started. --test-timeout bounds any one test; the
// slowest (an ansible --check run, the 240-seed swarm) take about 30 s here.
// The watchdog bounds the whole run inside CI's 20 min (less the installs before it) and
// says so, with the files that had not finished, when it fires.
const TEST_TIMEOUT_MS = 300_000;
const WHOLE_RUN_TIMEOUT_MS = 17 * 60_000;
const scripts = dirname(fileURLToPath(import.meta.url));
const reportDir = mkdtempSync(join(tmpdir(), 'slipstream-run-tests-'));
const filesReport = join(reportDir, 'files.jsonl');
// The runner gets its own process group so the watchdog can stop it with every test
// file and every relay, coordinator or proxy those files started.
const runner = spawn(
  process.execPath,
  [
    '--test',
    `--import=${pathToFileURL(join(scripts, 'test-exit-guard.mjs'))}`,
    `--test-timeout=${TEST_TIMEOUT_MS}`,
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${join(scripts, 'test-files-reporter.mjs')}`,
    `--test-reporter-destination=${filesReport}`,
    ...files,
  ],
  { stdio: 'inherit', detached: true },
);

/** What the files reporter wrote so far: the files that sent their summary, and those failed whole (by exit code). */
function readFilesReport() {
  const summarized = new Set();
  const failed = new Map();
  let text = '';
  try {
    text = readFileSync(filesReport, 'utf8');
  } catch {
    // not written yet
  }
  for (const line of text.split('\n')) {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue; // empty, or a line still being written
    }
    if (entry.summary !== undefined) summarized.add(resolve(entry.summary));
    else if (entry.failed !== undefined) failed.set(resolve(entry.failed), entry);
  }
  return { summarized, failed };
}

/** The started files that sent no summary of their verdicts, each with why when known (`running`: the run is not over). */
function unreported(running) {
  const { summarized, failed } = readFilesReport();
  return files
    .filter((file) => !summarized.has(resolve(file)))
    .map((file) => {
      const f = failed.get(resolve(file));
      const why =
        f === undefined
          ? running
            ? 'still running or not started'
            : 'its process exited 0 without sending its verdict summary: its results were cut off'
          : f.exitCode === KEPT_ALIVE_EXIT_CODE
            ? 'kept its process alive after its tests (see the test-exit-guard message above)'
            : `its process ended ${f.signal ? `on ${f.signal}` : `with exit code ${f.exitCode}`} before sending its verdict summary`;
      return `  ${relative('.', file)}: ${why}`;
    });
}

let timedOut = false;
const watchdog = setTimeout(() => {
  timedOut = true;
  const pending = unreported(true);
  console.error(`run-tests: the test run did not finish within ${WHOLE_RUN_TIMEOUT_MS / 60_000} min; stopping it and every process it started. Files not finished:\n${pending.join('\n') || '  (none: the runner itself hung)'}`);
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
  let status = timedOut ? 1 : (code ?? (signal ? 1 : 0));
  const missing = timedOut ? [] : unreported(false);
  rmSync(reportDir, { recursive: true, force: true });
  if (missing.length > 0) {
    console.error(`run-tests: ${missing.length} of ${files.length} test files did not report all their verdicts:\n${missing.join('\n')}`);
    status ||= 1;
  }
  process.exit(status);
});
