/**
 * Test support: real redis-server and coordinator processes on 127.0.0.1 (free ports,
 * stopped by PID), bounded polling, and a config file with known keys.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI_PATH } from '../../test/support/run-cli.js';
import { freePort } from '../../kit/free-port.js';
export { freePort };

/** Where Debian's redis-server lives; `.ci/run` installs the `redis-server` package. */
export const REDIS_SERVER = '/usr/bin/redis-server';

/** Polls `condition` every `intervalMs` until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1_000_000 && Date.now() < deadline; i++) {
    try {
      if (await condition()) return true;
    } catch {
      // not yet
    }
    await sleep(intervalMs);
  }
  try {
    return await condition();
  } catch {
    return false;
  }
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      process.kill(child.pid!, signal);
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/** A redis-server this test started. */
export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  /** PID of the running server (changes on restart). */
  pid(): number;
  /** Kills it by PID (SIGKILL: as if the machine went away) and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  /** Stops it by PID; idempotent. */
  stop(): Promise<void>;
}

async function redisReady(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setTimeout(500, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      data += chunk.toString();
      if (data.includes('\r\n')) {
        socket.destroy();
        resolve(data.startsWith('+PONG'));
      }
    });
    socket.on('error', () => resolve(false));
  });
}

/** Starts redis-server on a free port; fails (never skips) when the binary is missing. */
export async function startRedis(): Promise<RedisProcess> {
  assert.ok(existsSync(REDIS_SERVER), `${REDIS_SERVER} is missing: install Debian's 'redis-server' package (.ci/run does)`);
  const port = await freePort();
  let child: ChildProcess;
  const launch = async (): Promise<void> => {
    child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
    const ok = await waitFor(() => redisReady(port), 10_000, 50);
    assert.ok(ok, `redis-server did not answer PING on port ${port} within 10 s`);
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => child.pid!,
    kill: () => stopChild(child, 'SIGKILL'),
    restart: launch,
    stop: () => stopChild(child),
  };
}

/** Keys the test config gives a coordinator. */
export interface TestKeys {
  readonly ticketSigningSeed: string;
  readonly sealKey: string;
  readonly fleetSecret: string;
  readonly apiKey: string;
}

/** Fresh random keys (base64). */
export function testKeys(): TestKeys {
  return {
    ticketSigningSeed: randomBytes(32).toString('base64'),
    sealKey: randomBytes(32).toString('base64'),
    fleetSecret: randomBytes(24).toString('base64'),
    apiKey: randomBytes(24).toString('base64'),
  };
}

/** Writes a coordinator config (YAML) into a fresh temp dir; returns its path and a cleanup. */
export function writeConfig(keys: TestKeys, extra = ''): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'slip-coord-'));
  const path = join(dir, 'coordinator.yaml');
  writeFileSync(
    path,
    [
      'keys:',
      `  ticketSigningSeed: ${keys.ticketSigningSeed}`,
      `  sealKey: ${keys.sealKey}`,
      `  fleetSecret: ${keys.fleetSecret}`,
      '  apiKeys:',
      `    - ${keys.apiKey}`,
      extra,
    ].join('\n'),
  );
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A `slipstream coordinator` child process. */
export interface CoordinatorProcess {
  readonly url: string;
  readonly pid: number;
  /** Everything written to stdout so far (pino JSON lines). */
  stdout(): string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** SIGTERM by PID, wait for exit; idempotent. */
  stop(): Promise<void>;
}

/** Starts `node dist/cli/slipstream.js coordinator …args` and waits for its "listening on" line. */
export async function startCoordinatorProcess(args: readonly string[], timeoutMs = 15_000): Promise<CoordinatorProcess> {
  const child = spawn(process.execPath, [CLI_PATH, 'coordinator', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const listening = await waitFor(() => /listening on (http:\/\/\S+)/.test(err) || child.exitCode !== null, timeoutMs);
  const m = /listening on (http:\/\/\S+)/.exec(err);
  if (!listening || !m) {
    await stopChild(child, 'SIGKILL');
    assert.fail(`coordinator did not start (exit ${child.exitCode}):\n${err}\n${out}`);
  }
  return { url: m[1]!, pid: child.pid!, stdout: () => out, stderr: () => err, stop: () => stopChild(child) };
}
