/**
 * Errors a person meets in the first hour, each as the real `slipstream` process prints
 * it: the exit code and the one line (no stack trace) that names what was wrong.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliResult } from './support/run-cli.js';
import { freePort } from '../kit/free-port.js';
import { CliProcess } from './support/cli-process.js';
import { startRedis } from '../coordinator/test/support.js';

const dir = mkdtempSync(join(tmpdir(), 'slip-cli-errors-'));
const servers: Server[] = [];
const udpSockets: dgram.Socket[] = [];
after(() => {
  for (const server of servers) server.close();
  for (const socket of udpSockets) socket.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A TCP port on 127.0.0.1 held by this test process for the rest of the file. */
async function heldTcpPort(): Promise<number> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

function assertOneLine(result: CliResult, code: number, line: RegExp): void {
  assert.equal(result.code, code, result.stderr);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
  assert.match(lines[0]!, line);
  assert.doesNotMatch(result.stderr, /internal error|\n\s+at /);
}

test('coordinator on a port in use: one line naming the address, exit 1', async () => {
  const port = await heldTcpPort();
  const result = await runCli(['coordinator', '--listen', `127.0.0.1:${port}`, '--log-level', 'silent']);
  assertOneLine(result, 1, new RegExp(`^slipstream coordinator: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(EADDRINUSE\\); `));
});

test('coordinator on a port in use with a Redis store: the same line, and the process exits (the store is closed)', async () => {
  const redis = await startRedis();
  try {
    const port = await heldTcpPort();
    // runCli kills at its timeout: a process kept alive by its Redis connection fails on code null.
    const result = await runCli(['coordinator', '--listen', `127.0.0.1:${port}`, '--store', redis.url, '--log-level', 'silent'], 20_000);
    assertOneLine(result, 1, new RegExp(`^slipstream coordinator: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use \\(EADDRINUSE\\); `));
  } finally {
    await redis.stop();
  }
});

test('sim proxy on a port in use: one line naming the address, exit 1', async () => {
  const port = await heldTcpPort();
  const result = await runCli(['sim', 'proxy', '--listen', `127.0.0.1:${port}`, '--log-level', 'silent']);
  assertOneLine(result, 1, new RegExp(`^slipstream sim proxy: --listen 127\\.0\\.0\\.1:${port}: cannot listen: EADDRINUSE$`));
});

test('relay whose metrics port is in use: one line naming the address, exit 1', async () => {
  const port = await heldTcpPort();
  const config = join(dir, 'relay-metrics-in-use.yaml');
  writeFileSync(config, `metrics:\n  listen: 127.0.0.1:${port}\nrules:\n  - name: game\n    protocol: udp\n    listen: 127.0.0.1:0\n    origins: [127.0.0.1:9]\n`);
  const result = await runCli(['relay', '--config', config, '--log-level', 'silent']);
  assertOneLine(result, 1, new RegExp(`^slipstream relay: cannot bind metrics 127\\.0\\.0\\.1:${port}: EADDRINUSE$`));
});

/** `slipstream connect` against `coordinator` with no cache: fails before any relay. */
function connectTo(coordinator: string): Promise<CliResult> {
  return runCli(['connect', '--coordinator', coordinator, '--origin', 'game', '--listen', 'udp:127.0.0.1:0', '--api-key', 'k', '--cache', join(dir, 'no-cache.json')]);
}

const unreachable = (url: string, cause: string): RegExp => new RegExp(`^slipstream connect: SLIP_ERR_COORDINATOR_UNREACHABLE: cannot reach the coordinator at ${url.replace(/\./g, '\\.')} \\(${cause}\\) and no cached candidate list`);

test('connect to a coordinator nobody listens on: the cause is "connection refused", exit 1', async () => {
  const url = `http://127.0.0.1:${await freePort()}`;
  assertOneLine(await connectTo(url), 1, unreachable(url, 'connection refused \\(ECONNREFUSED\\)'));
});

test('connect to a coordinator whose name does not resolve: the cause is "name not found", exit 1', async () => {
  // .invalid never resolves (RFC 6761); without DNS at all the resolver says EAI_AGAIN.
  const url = 'http://coordinator.invalid:7400';
  assertOneLine(await connectTo(url), 1, unreachable(url, 'name (not found \\(ENOTFOUND\\)|lookup failed for now \\(DNS unreachable\\) \\(EAI_AGAIN\\))'));
});

test('connect to a coordinator that accepts and never answers: the cause is "timed out", exit 1', async () => {
  const url = `http://127.0.0.1:${await heldTcpPort()}`;
  assertOneLine(await connectTo(url), 1, unreachable(url, 'timed out after \\d+ ms'));
});

test('an unknown flag suggests the nearest one, exit 2', async () => {
  assertOneLine(await runCli(['coordinator', '--lisen', '127.0.0.1:0']), 2, /^slipstream: --lisen: unknown flag for 'slipstream coordinator'; did you mean --listen\? \(see 'slipstream coordinator --help'\)$/);
  assertOneLine(await runCli(['coordinator', '--colour', 'red']), 2, /^slipstream: --colour: unknown flag for 'slipstream coordinator' \(see 'slipstream coordinator --help'\)$/);
});

test('an unknown command or subcommand suggests the nearest one, exit 2', async () => {
  assertOneLine(await runCli(['coordinatr']), 2, /^slipstream: 'coordinatr': unknown command \(did you mean 'coordinator'\?\); expected one of /);
  assertOneLine(await runCli(['sim', 'lnik']), 2, /^slipstream: 'lnik': unknown subcommand of 'slipstream sim' \(did you mean 'link'\?\); expected one of /);
});

test('an unknown config key suggests the nearest one, with file and line, exit 2', async () => {
  const config = join(dir, 'relay-typo.yaml');
  writeFileSync(config, `metrics:\n  listen: off\nrules:\n  - name: game\n    protocol: udp\n    listen: 127.0.0.1:0\n    origins: [127.0.0.1:9]\n    idleTimoutMs: 5000\n`);
  const result = await runCli(['relay', '--config', config, '--check']);
  assertOneLine(result, 2, new RegExp(`^slipstream: ${config.replace(/\./g, '\\.')}:8: rules\\[0\\]\\.idleTimoutMs: unknown key \\(did you mean 'idleTimeoutMs'\\?\\); expected one of name, `));
});

test('connect binds its local port before contacting anyone: a port in use is SLIP_ERR_BIND_FAILED naming it, exit 1', async () => {
  const held = dgram.createSocket('udp4');
  udpSockets.push(held);
  await new Promise<void>((resolve) => held.bind(0, '127.0.0.1', resolve));
  const port = held.address().port;
  // The coordinator is down too: had connect asked it first, the error would be about it.
  const coordinator = `http://127.0.0.1:${await freePort()}`;
  const result = await runCli(['connect', '--coordinator', coordinator, '--origin', 'game', '--listen', `udp:127.0.0.1:${port}`, '--api-key', 'k', '--cache', join(dir, 'no-cache.json')]);
  assertOneLine(result, 1, new RegExp(`^slipstream connect: SLIP_ERR_BIND_FAILED: cannot listen on udp:127\\.0\\.0\\.1:${port}: address already in use \\(EADDRINUSE\\); another process holds it`));
});

test('durations in a relay file accept 60s/500ms strings; a bad one is one line with file, line and key, exit 2', async () => {
  const rule = (idle: string): string => `metrics:\n  listen: off\nrules:\n  - name: game\n    protocol: udp\n    listen: 127.0.0.1:0\n    origins: [127.0.0.1:9]\n    idleTimeoutMs: ${idle}\n`;
  const good = join(dir, 'relay-duration.yaml');
  writeFileSync(good, rule('60s'));
  const ok = await runCli(['relay', '--config', good, '--check']);
  assert.equal(ok.code, 0, ok.stderr);
  const bad = join(dir, 'relay-bad-duration.yaml');
  writeFileSync(bad, rule('60 seconds'));
  assertOneLine(await runCli(['relay', '--config', bad, '--check']), 2, new RegExp(`^slipstream: ${bad.replace(/\./g, '\\.')}:8: rules\\[0\\]\\.idleTimeoutMs: '60 seconds' is not a duration; expected an integer from \\d+ to \\d+ ms, or a duration such as 500ms, 60s or 2m$`));
});

test('two relays on one host: the second takes a free metrics port instead of colliding on the default 9464, and says which', async () => {
  // Holds the default port, unless something on this machine (another relay) already does.
  const holder = createServer();
  const heldHere = await new Promise<boolean>((resolve) => {
    holder.once('error', () => resolve(false));
    holder.listen(9464, '127.0.0.1', () => resolve(true));
  });
  if (heldHere) servers.push(holder);
  const config = join(dir, 'relay-default-metrics.yaml');
  writeFileSync(config, 'rules:\n  - name: game\n    protocol: udp\n    listen: 127.0.0.1:0\n    origins: [127.0.0.1:9]\n');
  const relay = CliProcess.start(['relay', '--config', config]);
  try {
    const m = await relay.waitFor(/^slipstream relay: warning: the default metrics address 127\.0\.0\.1:9464 is in use \(another relay on this host\?\); \/metrics and \/health listen on 127\.0\.0\.1:(\d+) instead; set metrics\.listen to choose the port$/m, 'stderr', 30_000);
    const port = Number(m[1]);
    assert.notEqual(port, 9464);
    await relay.waitFor(/"event":"started"/, 'stdout', 30_000);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(health.status, 200);
  } finally {
    await relay.stop();
  }
  assert.equal(await relay.exited, 0);
});

test('--log-format pretty prints one readable line per event; an unknown format is a usage error, exit 2', async () => {
  const coordinator = CliProcess.start(['coordinator', '--listen', '127.0.0.1:0', '--log-format', 'pretty']);
  try {
    await coordinator.waitFor(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}coordinator: coordinator listening event=listening url=http:\/\/127\.0\.0\.1:\d+ store=memory /m, 'stdout', 30_000);
    assert.doesNotMatch(coordinator.stdout, /^\{/m);
  } finally {
    await coordinator.stop();
  }
  assertOneLine(await runCli(['relay', '--log-format', 'xml']), 2, /^slipstream: --log-format: 'xml' is not one of json, pretty$/);
});
