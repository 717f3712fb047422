/**
 * Errors a person meets in the first hour, each as the real `slipstream` process prints
 * it: the exit code and the one line (no stack trace) that names what was wrong.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliResult } from './support/run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'slip-cli-errors-'));
const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close();
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
