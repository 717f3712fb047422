// Container health check: one script for every command the image runs.
//   node /app/deploy/docker/healthcheck.mjs [--pid N]
// Finds the running `slipstream` process (PID N, or the one whose command line runs
// dist/cli/slipstream.js), works out from ITS flags and config file where its health
// endpoint listens, and asks it:
//   relay        GET http://<metrics.listen>/health     200 ok; 503 while draining → unhealthy
//   coordinator  GET http://<listen>/health             200 (ok or degraded: it still serves)
//   sim proxy    GET http://<--listen>/v1/health        200
// Exit 0 healthy, 1 unhealthy (what Docker's HEALTHCHECK expects). Defaults are the
// CLI's: relay metrics 127.0.0.1:9464, coordinator 127.0.0.1:7400, sim proxy 127.0.0.1:8474.
/* global fetch, AbortSignal */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TIMEOUT_MS = 3000;
const appRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function cmdline(pid) {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
}

function findProcess() {
  const at = process.argv.indexOf('--pid');
  if (at !== -1) {
    try {
      return cmdline(Number(process.argv[at + 1]));
    } catch {
      return undefined;
    }
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const argv = cmdline(entry);
      if (argv.some((a) => a.endsWith('dist/cli/slipstream.js'))) return argv;
    } catch {
      // the process ended while we looked
    }
  }
  return undefined;
}

/** Value of --name VALUE or --name=VALUE. */
function flag(argv, name) {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === `--${name}`) return argv[i + 1];
    if (argv[i].startsWith(`--${name}=`)) return argv[i].slice(name.length + 3);
  }
  return undefined;
}

function readYaml(path) {
  // The app's own YAML parser (a production dependency, so it is in /app/node_modules).
  const require = createRequire(join(appRoot, 'package.json'));
  const YAML = require('yaml');
  return YAML.parse(readFileSync(path, 'utf8')) ?? {};
}

/** host:port (IPv6 in brackets or bare) → a URL base a local client can reach. */
function base(listen) {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(listen);
  if (!m) throw new Error(`cannot read listen address '${listen}'`);
  let host = m[1];
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${m[2]}`;
}

function target(argv) {
  const script = argv.findIndex((a) => a.endsWith('dist/cli/slipstream.js'));
  const [command, sub] = argv.slice(script + 1);
  const configPath = flag(argv, 'config');
  if (command === 'relay') {
    const listen = configPath ? readYaml(configPath).metrics?.listen ?? '127.0.0.1:9464' : '127.0.0.1:9464';
    if (listen === 'off') return { what: 'relay', url: undefined };
    return { what: 'relay', url: `${base(String(listen))}/health` };
  }
  if (command === 'coordinator') {
    const listen = flag(argv, 'listen') ?? (configPath ? readYaml(configPath).listen : undefined) ?? '127.0.0.1:7400';
    return { what: 'coordinator', url: `${base(String(listen))}/health` };
  }
  if (command === 'sim' && sub === 'proxy') {
    return { what: 'sim proxy', url: `${base(flag(argv, 'listen') ?? '127.0.0.1:8474')}/v1/health` };
  }
  return { what: command ?? '(no command)', url: undefined };
}

async function main() {
  const argv = findProcess();
  if (!argv) {
    console.log('unhealthy: no slipstream process');
    return 1;
  }
  const { what, url } = target(argv);
  if (url === undefined) {
    // A relay with metrics off has no endpoint; a one-shot command has nothing to serve.
    console.log(`healthy: ${what} is running (no health endpoint to ask)`);
    return 0;
  }
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = await response.text();
    console.log(`${response.status === 200 ? 'healthy' : 'unhealthy'}: ${what} ${url} → ${response.status} ${body.slice(0, 200)}`);
    return response.status === 200 ? 0 : 1;
  } catch (error) {
    console.log(`unhealthy: ${what} ${url} → ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

process.exitCode = await main();
