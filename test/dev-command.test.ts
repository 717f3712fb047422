/**
 * `slipstream dev` end to end: the real fleet on one machine (coordinator, relays, the
 * `sim proxy` last mile, connect and the echo game server as real processes on
 * 127.0.0.x). While it runs, the dashboard answers and a datagram sent to the game port
 * comes back; `--seconds --json` prints the summary; SIGINT stops everything and exits 0;
 * a child that dies is named and the command exits 1; in every case no child process
 * is left (its PID is gone).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliProcess } from './support/cli-process.js';
import { runCli } from './support/run-cli.js';
import { until } from './support/wait.js';
import { lastConnectStatus, type DevSummary } from '../cli/dev.js';

/** Fleet start takes 3–6 s on a quiet machine; generous for a busy one. */
const READY_TIMEOUT_MS = 40_000;
/** Stopping takes well under a second per child; the registry SIGKILLs after 3 s. */
const EXIT_TIMEOUT_MS = 15_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** PIDs of the running processes whose command line mentions `text` (Linux /proc): configs and connect's cache live in the command's directory. */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // Exited while listed.
    }
  }
  return pids;
}

/** The `processes:` line of the ready message, as name → PID. */
function processesOf(output: string): Map<string, number> {
  const line = /processes: +(.+)/.exec(output)![1]!;
  return new Map(line.split(', ').map((item) => {
    const at = item.lastIndexOf(' ');
    return [item.slice(0, at), Number(item.slice(at + 1))] as const;
  }));
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends a datagram to 127.0.0.1:`port` every 50 ms until the same bytes come back; bounded to `timeoutMs`. */
async function echoThrough(port: number, timeoutMs: number): Promise<boolean> {
  const socket = createSocket('udp4');
  await new Promise<void>((done) => socket.bind(0, '127.0.0.1', done));
  const payload = Buffer.from('slipstream dev test datagram');
  let echoed = false;
  socket.on('message', (bytes) => (echoed ||= bytes.equals(payload)));
  try {
    for (let waitedMs = 0; waitedMs < timeoutMs && !echoed; waitedMs += 50) {
      socket.send(payload, port, '127.0.0.1');
      await new Promise((done) => setTimeout(done, 50));
    }
    return echoed;
  } finally {
    socket.close();
  }
}

describe('slipstream dev', () => {
  test('connect status lines parse', () => {
    const out = 'listening: udp:127.0.0.1:1\nstatus: relay relay-2 rtt 21.5 ms loss 3.51 % before FEC → 0.00 % after; up sw(1×32)@2ms/100ms down sw; sent 79 received 78; switches 1; fec up data 1 B redundant 2 B\n';
    assert.deepEqual(lastConnectStatus(out), { relay: 'relay-2', rttMs: 21.5, lossBeforeFec: 0.0351, lossAfterFec: 0, upstreamFec: 'sw(1×32)@2ms/100ms', downstreamFec: 'sw', packetsSent: 79, packetsReceived: 78, switches: 1 });
    assert.equal(lastConnectStatus('status: relay none rtt ? loss 0.00 % before FEC → 0.00 % after; up x down off; sent 0 received 0; switches 0')?.rttMs, undefined);
    assert.equal(lastConnectStatus('connected: session open'), undefined);
  });

  test('--json without --seconds is a usage error', async () => {
    const r = await runCli(['dev', '--json']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--json: needs --seconds/);
  });

  test('--game-port in use: one line naming it, exit 1, nothing started', async () => {
    const holder = createSocket('udp4');
    await new Promise<void>((done) => holder.bind(0, '127.0.0.1', done));
    const dir = mkdtempSync(join(tmpdir(), 'dev-test-'));
    try {
      const port = holder.address().port;
      const r = await runCli(['dev', '--game-port', String(port), '--dir', dir], 30_000);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`--game-port ${port}: cannot bind udp 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`));
      assert.match(r.stderr, /stopped 0 processes/);
    } finally {
      holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--seconds 8 --json --relays 2 --traffic 5: dashboard answers, the game port echoes, the summary is right, no process left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dev-test-'));
    try {
      // The built-in traffic and this test share the game port, and connect answers whoever
      // sent last: a slow built-in rate (5/s) leaves this test's datagrams room to be answered.
      const dev = CliProcess.start(['dev', '--seconds', '8', '--json', '--relays', '2', '--loss', '2', '--traffic', '5', '--dir', dir]);
      const dashboard = (await dev.waitFor(/dashboard: +(\S+)/, 'stderr', READY_TIMEOUT_MS))[1]!;
      const gamePort = Number((await dev.waitFor(/game port: +udp 127\.0\.0\.1:(\d+)/, 'stderr', 1000))[1]);
      const pids = processesOf(dev.stderr);
      assert.deepEqual([...pids.keys()].sort(), ['connect', 'coordinator', 'relay-1', 'relay-2', 'sim proxy']);

      const page = await fetch(dashboard, { signal: AbortSignal.timeout(5000) });
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
      assert.ok(await echoThrough(gamePort, 6000), 'a datagram sent to the game port came back');

      const code = await withTimeout(dev.exited, 8000 + EXIT_TIMEOUT_MS, 'exit after --seconds');
      assert.equal(code, 0, dev.stderr);
      const summary = JSON.parse(dev.stdout) as DevSummary;
      assert.equal(summary.dir, dir);
      assert.equal(summary.dashboardUrl, dashboard);
      assert.equal(summary.gamePort, gamePort);
      assert.deepEqual(summary.relays.map((r) => r.id), ['relay-1', 'relay-2']);
      for (const r of summary.relays) {
        assert.match(r.tunnel, /^127\.0\.0\.[23]:\d+$/);
        assert.match(r.proxy, /^127\.0\.0\.1:\d+$/);
      }
      assert.equal(summary.relaysHealthy, 2, 'both relays registered and healthy');
      assert.ok(summary.status !== undefined && ['relay-1', 'relay-2'].includes(summary.status.relay), `chosen relay: ${JSON.stringify(summary.status)}`);
      assert.ok(summary.status.rttMs !== undefined && summary.status.rttMs > 0);
      assert.ok(summary.status.lossBeforeFec >= 0 && summary.status.lossBeforeFec <= 1);
      assert.ok(summary.echoes.sent > 0 && summary.echoes.received > 0 && summary.echoes.received <= summary.echoes.sent, `echoes ${JSON.stringify(summary.echoes)}`);
      assert.deepEqual(new Map(summary.processes.map((p) => [p.name, p.pid])), pids);
      assert.match(readFileSync(join(dir, 'keys.yaml'), 'utf8'), /vault_ticket_public_key: /, 'the keys generate-keys.mjs printed are kept');
      assert.match(readFileSync(join(dir, 'relay-2.yaml'), 'utf8'), /ticketPublicKey: /);
      for (const [name, pid] of pids) assert.ok(!alive(pid), `${name} (PID ${pid}) is gone`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('SIGINT after ready: stops every process and exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dev-test-'));
    try {
      const dev = CliProcess.start(['dev', '--relays', '1', '--traffic', '0', '--dir', dir]);
      await dev.waitFor(/Ctrl-C stops everything/, 'stdout', READY_TIMEOUT_MS);
      const pids = processesOf(dev.stdout);
      assert.equal(pids.size, 4);
      for (const [name, pid] of pids) assert.ok(alive(pid), `${name} runs`);
      await until(() => /relay relay-1 · rtt/.test(dev.stdout), 10_000, 'a status line naming the relay');
      dev.kill('SIGINT');
      assert.equal(await withTimeout(dev.exited, EXIT_TIMEOUT_MS, 'exit after SIGINT'), 0, dev.stderr);
      assert.match(dev.stderr, /stopped 4 processes/);
      for (const [name, pid] of pids) assert.ok(!alive(pid), `${name} (PID ${pid}) is gone`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('SIGINT while the fleet forms: what started is stopped, exit 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dev-test-'));
    try {
      const dev = CliProcess.start(['dev', '--relays', '3', '--traffic', '0', '--dir', dir]);
      await dev.waitFor(/coordinator: http/, 'stderr', READY_TIMEOUT_MS);
      assert.ok(processesMentioning(dir).length > 0, 'the coordinator runs with its config in the directory');
      dev.kill('SIGINT');
      assert.equal(await withTimeout(dev.exited, EXIT_TIMEOUT_MS, 'exit after SIGINT'), 0, dev.stderr);
      assert.doesNotMatch(dev.stderr, /ready: /);
      assert.deepEqual(processesMentioning(dir), [], 'no process of this fleet is left');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a relay that dies: named, everything stopped, exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dev-test-'));
    try {
      const dev = CliProcess.start(['dev', '--relays', '1', '--traffic', '0', '--dir', dir]);
      await dev.waitFor(/Ctrl-C stops everything/, 'stdout', READY_TIMEOUT_MS);
      const pids = processesOf(dev.stdout);
      process.kill(pids.get('relay-1')!, 'SIGKILL');
      assert.equal(await withTimeout(dev.exited, EXIT_TIMEOUT_MS, 'exit after a death'), 1, dev.stderr);
      assert.match(dev.stderr, /relay-1 died unexpectedly/);
      for (const [name, pid] of pids) assert.ok(!alive(pid), `${name} (PID ${pid}) is gone`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
