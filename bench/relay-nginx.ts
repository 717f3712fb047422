/**
 * nginx `stream` as a third forwarder in `slipstream bench relay`, when it is installed
 * (Debian: `nginx` + `libnginx-mod-stream`); detected, never required. The bench writes
 * a UDP and TCP proxy config into its temp dir and starts nginx as a real process on
 * 127.0.0.1 (master + one worker, as a one-core deployment would run it; `daemon off`,
 * so the process we spawn is the master and we stop it by its PID). CPU figures are the
 * worker's (the process that forwards). Benchmark-only code.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { freePort } from '../kit/free-port.js';

/** Where the nginx binary is looked for, in order (then `PATH`). */
const NGINX_BINARIES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'];
/** Where a dynamic stream module is looked for (Debian's libnginx-mod-stream first). */
const STREAM_MODULES = ['/usr/lib/nginx/modules/ngx_stream_module.so', '/usr/lib64/nginx/modules/ngx_stream_module.so', '/usr/share/nginx/modules/ngx_stream_module.so', '/usr/local/nginx/modules/ngx_stream_module.so'];
/** The UDP listen socket's receive buffer, bytes: what the bench gives the relay (socketReceiveBufferBytes). */
const RECEIVE_BUFFER_BYTES = 8 << 20;
/** How long nginx keeps an idle UDP session, s: the load generator's flows come and go between rounds. */
const UDP_SESSION_TIMEOUT_S = 5;

/** An nginx that can run the stream proxy, or why not. */
export type NginxFound = { readonly ok: true; readonly binary: string; readonly loadModule: string | undefined } | { readonly ok: false; readonly reason: string };

/** Finds nginx and its stream module (statically built in, or a loadable `ngx_stream_module.so`). */
export function findNginx(): NginxFound {
  let binary = NGINX_BINARIES.find((path) => existsSync(path));
  if (!binary) {
    try {
      binary = execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      binary = undefined;
    }
  }
  if (!binary) return { ok: false, reason: 'nginx is not installed (Debian: apt-get install nginx libnginx-mod-stream)' };
  let built: string;
  try {
    // `nginx -V` prints its configure arguments on stderr.
    built = execFileSync(binary, ['-V'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    built = String((error as { stderr?: string }).stderr ?? '');
  }
  const args = /configure arguments:(.*)/.exec(built)?.[1] ?? '';
  if (/--with-stream(\s|$)/.test(args)) return { ok: true, binary, loadModule: undefined };
  const module = STREAM_MODULES.find((path) => existsSync(path));
  if (module) return { ok: true, binary, loadModule: module };
  return { ok: false, reason: `${binary} has no stream module (Debian: apt-get install libnginx-mod-stream)` };
}

/** A running nginx stream proxy. */
export interface NginxProxy {
  /** The master's PID (the process we spawned; stopped by it). */
  readonly pid: number;
  /** The worker's PID, whose CPU the bench counts. */
  readonly workerPid: number;
  readonly udpPort: number;
  readonly tcpPort: number;
  stop(): Promise<void>;
}

/** The config the bench runs nginx with (exported for the record: the README quotes it). */
export function nginxConfig(o: { dir: string; loadModule: string | undefined; udpPort: number; tcpPort: number; originUdpPort: number; originTcpPort: number }): string {
  return [
    ...(o.loadModule ? [`load_module ${o.loadModule};`] : []),
    'daemon off;',
    'master_process on;',
    'worker_processes 1;',
    `pid ${join(o.dir, 'nginx.pid')};`,
    `error_log ${join(o.dir, 'nginx-error.log')} warn;`,
    'events { worker_connections 8192; }',
    'stream {',
    '  server {',
    `    listen 127.0.0.1:${o.udpPort} udp rcvbuf=${RECEIVE_BUFFER_BYTES};`,
    `    proxy_pass 127.0.0.1:${o.originUdpPort};`,
    `    proxy_timeout ${UDP_SESSION_TIMEOUT_S}s;`,
    '  }',
    '  server {',
    `    listen 127.0.0.1:${o.tcpPort};`,
    `    proxy_pass 127.0.0.1:${o.originTcpPort};`,
    '  }',
    '}',
    '',
  ].join('\n');
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Starts nginx (see the module comment) in `dir`, proxying to the origin's ports; resolves once its worker runs and both ports accept. */
export async function startNginx(found: NginxFound & { ok: true }, dir: string, originUdpPort: number, originTcpPort: number): Promise<NginxProxy> {
  const udpPort = await freePort('udp');
  const tcpPort = await freePort('tcp');
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, nginxConfig({ dir, loadModule: found.loadModule, udpPort, tcpPort, originUdpPort, originTcpPort }));
  const child: ChildProcess = spawn(found.binary, ['-p', dir, '-c', confPath, '-e', join(dir, 'nginx-error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const stop = (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => (clearTimeout(timer), resolve()));
      // SIGTERM: nginx's fast shutdown (the master stops its worker).
      child.kill('SIGTERM');
    });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      const log = existsSync(join(dir, 'nginx-error.log')) ? readFileSync(join(dir, 'nginx-error.log'), 'utf8') : '';
      throw new Error(`nginx exited with code ${child.exitCode}: ${(stderr + log).trim().split('\n').slice(-3).join(' | ')}`);
    }
    const [workerPid] = children(child.pid!);
    if (workerPid !== undefined && (await tcpAccepts(tcpPort))) return { pid: child.pid!, workerPid, udpPort, tcpPort, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`nginx did not start within 10 s: ${stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}
