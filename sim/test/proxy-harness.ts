/**
 * Test support for `slipstream sim proxy`: runs the built CLI as a child process on
 * loopback (as a user would), talks to its API with fetch, and stops it by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { CLI_PATH } from '../../test/support/run-cli.js';

/** A running proxy process. */
export interface ProxyProcess {
  /** `http://127.0.0.1:PORT` of its API. */
  readonly api: string;
  readonly child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far (for failure messages). */
  output(): string;
  /** SIGTERM by PID, SIGKILL after 3 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `slipstream sim proxy --listen 127.0.0.1:0 …args` and waits for its `started` line (10 s at most). */
export function startProxyProcess(args: readonly string[] = []): Promise<ProxyProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, 'sim', 'proxy', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let started = false;
    const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sim proxy did not start within 10 s:\n${out}`));
    }, 10_000);
    const stop = async (): Promise<number | null> => {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid!, 'SIGTERM');
        const killer = setTimeout(() => {
          if (child.exitCode === null) process.kill(child.pid!, 'SIGKILL');
        }, 3000);
        const code = await exited;
        clearTimeout(killer);
        return code;
      }
      return child.exitCode;
    };
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (started) return;
      const match = /"event":"started","api":"([^"]+)"/.exec(out);
      if (match) {
        started = true;
        clearTimeout(timer);
        resolve({ api: match[1]!, child, output: () => out, stop });
      }
    });
    child.on('exit', (code) => {
      if (!started) {
        clearTimeout(timer);
        reject(new Error(`sim proxy exited with ${code} before starting:\n${out}`));
      }
    });
  });
}

/** One API call; the body is JSON (undefined for 204). */
// Answers are whatever JSON the API sent; tests read fields from them directly.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function callApi(api: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${api}${path}`, { method, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** Creates a proxy and returns its bound port; throws with the API's answer when refused. */
export async function createProxy(api: string, definition: Record<string, unknown>): Promise<number> {
  const created = await callApi(api, 'POST', '/v1/proxies', definition);
  if (created.status !== 201) throw new Error(`create ${JSON.stringify(definition).slice(0, 200)} → ${created.status} ${JSON.stringify(created.body)}`);
  return Number(/:(\d+)$/.exec(created.body.listen as string)![1]);
}

/** A UDP echo server on 127.0.0.1 (in this process). */
export async function udpEcho(): Promise<{ port: number; socket: Socket; close(): Promise<void> }> {
  const socket = createSocket('udp4');
  socket.on('message', (bytes, from) => socket.send(bytes, from.port, from.address));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, socket, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}

/** Median of a list (sorted copy). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export { ping, type PingRun } from '../src/proxy/udp-ping.js';
