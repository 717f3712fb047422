// Builds the udp-batch addon at `npm install` (the root package's `install` script).
// Never fails the install: without a compiler, headers or Linux the relay uses `dgram`
// (it says so in its `udp_io` log line), so a failed build prints one line and exits 0.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const BUILD_TIMEOUT_MS = 180_000;

function main() {
  if (process.platform !== 'linux') return 'not Linux (recvmmsg/sendmmsg)';
  if (process.env.SLIPSTREAM_SKIP_NATIVE_BUILD === '1') return 'SLIPSTREAM_SKIP_NATIVE_BUILD=1';
  // npm sets npm_config_node_gyp to the node-gyp it bundles; a global one serves otherwise.
  const gyp = process.env.npm_config_node_gyp;
  const command = gyp !== undefined && existsSync(gyp) ? [process.execPath, gyp] : ['node-gyp'];
  const args = ['rebuild', '--release'];
  // Headers of the running Node when its distribution has them (the npm `node` package
  // does), so nothing is downloaded; otherwise node-gyp's own choice (`npm config get nodedir`).
  const nodedir = headerDirs().find((dir) => existsSync(join(dir, 'include', 'node', 'node_api.h')));
  if (nodedir !== undefined) args.push(`--nodedir=${nodedir}`);
  const run = spawnSync(command[0], [...command.slice(1), ...args], { cwd: here, encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
  if (run.error !== undefined) return run.error.message;
  if (run.status !== 0) {
    const lines = `${run.stderr}\n${run.stdout}`.split('\n').filter((l) => /error/i.test(l));
    return lines[0]?.trim() ?? `node-gyp exited with ${run.status}`;
  }
  return undefined;
}

/** Candidate Node distributions with headers: the running one's prefix, the npm `node` package's platform package, npm's nodedir. */
function headerDirs() {
  const prefix = resolve(process.execPath, '..', '..');
  const dirs = [prefix];
  const platformPackage = join(prefix, 'node_modules', `node-${process.platform}-${process.arch}`);
  dirs.push(platformPackage);
  if (process.env.npm_config_nodedir) dirs.push(process.env.npm_config_nodedir);
  return dirs;
}

const failure = main();
if (failure !== undefined) console.log(`slipstream: native UDP batching not built (${failure}); the relay will use dgram`);
