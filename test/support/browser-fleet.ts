/**
 * A local fleet for the browser SDK's end-to-end tests, all real: a `slipstream
 * coordinator` process, `slipstream relay` processes that join the fleet themselves and
 * have a browser entry (`tunnel.webrtc`, CORS open to the page), a UDP echo origin (with
 * a TCP listener on the same port for the relays' origin probes), and the page's own
 * HTTP server on 127.0.0.1 (a secure context, so WebCrypto is there). The page server
 * serves `slipstream/browser` bundled by esbuild (`scripts/bundle-browser.mjs`: platform
 * browser, no Node polyfills), `/ticket` (the game backend: `POST /v1/session` with the
 * API key) and `/coord/*`, a reverse proxy to the coordinator, which sends no CORS
 * headers (a game serves both from one origin, or puts CORS in front).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { launchChromium } from '../../coordinator/scripts/browser.js';
import { CoordinatorClient } from '../../kit/coordinator-client.js';
import { CliProcess } from './cli-process.js';
import { fleetKeys, fleetRelayYaml, startCoordinator, type FleetKeys } from './local-fleet.js';
import { freePort, udpEchoOrigin, type UdpEchoOrigin } from './sockets.js';
import { eventually } from './wait.js';

/** dist/test/support/browser-fleet.js → the repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** One relay of the fleet. */
export interface BrowserRelay {
  readonly id: string;
  readonly proc: CliProcess;
  /** Its ICE UDP mux port. */
  readonly muxPort: number;
}

/** What {@link startBrowserFleet} started. */
export interface BrowserFleet {
  readonly keys: FleetKeys;
  readonly coordinatorUrl: string;
  /** A game backend's client (API key): issue and revoke sessions. */
  readonly backend: CoordinatorClient;
  readonly relays: BrowserRelay[];
  readonly origin: UdpEchoOrigin;
  /** The page's URL (`/`: loads the bundle as `window.slip`, then sets `window.ready`). */
  readonly pageUrl: string;
  /** Session ids `/ticket` issued, in order. */
  readonly issued: string[];
  /** Stops every process and server (SIGTERM; relays already killed are skipped). */
  stop(): Promise<void>;
}

/** The page: the bundle as one ES module, exposed as `window.slip`. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>slipstream/browser connect</title>
<script type="module">import * as slip from '/slipstream-browser.js'; window.slip = slip; window.ready = true;</script>`;

/** Bundles `slipstream/browser` with esbuild into `outfile` (scripts/bundle-browser.mjs); rejects with esbuild's errors. */
export async function bundleBrowserEntry(outfile: string): Promise<void> {
  const script = pathToFileURL(join(REPO_ROOT, 'scripts', 'bundle-browser.mjs')).href;
  const { bundleBrowser } = (await import(script)) as { bundleBrowser: (o: { entry?: string; outfile?: string }) => Promise<unknown> };
  await bundleBrowser({ outfile });
}

/**
 * Starts the fleet in `dir`: relays `relays` (ids, and extra `tunnel.webrtc` lines each,
 * e.g. `publicIceAddress: …`), waits until the coordinator routes browsers to all of
 * them, bundles the browser entry and serves the page.
 */
export async function startBrowserFleet(dir: string, relays: readonly { readonly id: string; readonly muxPort?: number; readonly webrtc?: readonly string[] }[]): Promise<BrowserFleet> {
  mkdirSync(dir, { recursive: true });
  const keys = fleetKeys();
  // The relays' origin probe is a TCP connect to the origin's address: a TCP listener on
  // the UDP origin's port number (taken on TCP now and then: another pick then).
  const tcp = net.createServer((s) => s.destroy());
  let origin = await udpEchoOrigin();
  for (let attempt = 1; ; attempt++) {
    const failed = await new Promise<Error | undefined>((ok) => {
      tcp.once('error', ok);
      tcp.listen(origin.port, '127.0.0.1', () => ok(undefined));
    });
    if (failed === undefined) break;
    origin.socket.close();
    if (attempt === 20) throw failed;
    origin = await udpEchoOrigin();
  }
  tcp.removeAllListeners('error');
  const coordinator = await startCoordinator(dir, keys, origin.port);
  const started: BrowserRelay[] = [];
  const procs: CliProcess[] = [coordinator.proc];
  const bundle = join(dir, 'slipstream-browser.js');
  await bundleBrowserEntry(bundle);
  const backend = new CoordinatorClient({ baseUrl: coordinator.url, apiKey: keys.apiKey });
  const issued: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/') return void res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    if (path === '/slipstream-browser.js') return void res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(bundle));
    if (path === '/ticket') {
      backend.issueSession({ origin: 'game', ttlS: 600 }).then(
        (session) => {
          issued.push(session.sessionId);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(session));
        },
        (error: Error) => res.writeHead(502).end(error.message),
      );
      return;
    }
    if (path.startsWith('/coord/')) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
        fetch(`${coordinator.url}${(req.url ?? '').slice('/coord'.length)}`, { method: req.method, body, headers: body === undefined ? {} : { 'content-type': 'application/json' } }).then(
          async (answer) => res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(Buffer.from(await answer.arrayBuffer())),
          (error: Error) => res.writeHead(502).end(error.message),
        );
      });
      return;
    }
    res.writeHead(404).end();
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    tcp.close();
    origin.socket.close();
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  };
  after(stop);
  for (const [i, r] of relays.entries()) {
    const muxPort = r.muxPort ?? (await freePort('udp'));
    const config = join(dir, `${r.id}.yaml`);
    const yaml = fleetRelayYaml({ relayId: r.id, latitude: 50 + i, longitude: 8, seed: keys.seed, sealKeyBase64: keys.sealKey.toString('base64'), originPort: origin.port, coordinatorUrl: coordinator.url, fleetSecret: { inline: keys.fleetSecret }, fleetKeys: ['heartbeatIntervalMs: 300', 'probeIntervalMs: 100', 'reportIntervalMs: 500', 'meshRefreshMs: 500'] });
    const webrtc = ['  webrtc:', '    listen: 127.0.0.1:0', `    udpMuxPort: ${muxPort}`, "    allowOrigins: ['*']", ...(r.webrtc ?? []).map((l) => `    ${l}`)];
    writeFileSync(config, yaml.replace('\nfleet:', `\n${webrtc.join('\n')}\nfleet:`));
    const proc = CliProcess.start(['relay', '--config', config]);
    procs.push(proc);
    started.push({ id: r.id, proc, muxPort });
  }
  await eventually(
    async () => {
      const route = await backend.route({ origin: 'game', limit: 8, twoHop: false }).catch(() => undefined);
      return route !== undefined && relays.every((r) => route.candidates.some((c) => c.relayId === r.id && c.webrtcUrl !== undefined)) ? true : undefined;
    },
    20_000,
    'the coordinator to route to every relay with its webrtcUrl',
  );
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const pageUrl = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`;
  return { keys, coordinatorUrl: coordinator.url, backend, relays: started, origin, pageUrl, issued, stop };
}

/**
 * The page-side helpers, plain JavaScript evaluated in the page once (the project's
 * TypeScript has no DOM types): `window.start(options)` connects and records paths,
 * echoes (by the sequence number in each payload's first 4 bytes, with arrival times)
 * and the close reason; `window.burst(from, count, perSecond)` sends `count` datagrams
 * of 64 bytes, sequence numbers from `from`, at `perSecond`, on a steady schedule.
 */
export const PAGE_HELPERS = `
  window.start = async (options) => {
    const log = { paths: [], echoes: new Map(), closeReason: undefined, closedAtMs: undefined, errors: [] };
    window.log = log;
    const conn = await slip.connect({ coordinator: location.origin + '/coord', origin: 'game', ticketProvider: () => fetch('/ticket').then((r) => r.json()), ...options });
    window.conn = conn;
    conn.on('path', (p) => log.paths.push({ relayId: p.relayId, backupId: p.backupId, reason: p.reason, atMs: performance.now() }));
    conn.on('message', (b) => { const seq = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0); if (!log.echoes.has(seq)) log.echoes.set(seq, performance.now()); });
    conn.on('close', (reason) => { log.closeReason = reason ? reason.code : null; log.closedAtMs = performance.now(); });
    conn.on('error', (e) => log.errors.push(e.code));
    const s = conn.stats();
    return { sessionId: conn.sessionId, relayId: s.relayId, backupId: s.backupId, fecMode: s.fecMode };
  };
  window.burst = async (from, count, perSecond) => {
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const due = t0 + (i * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const payload = new Uint8Array(64);
      new DataView(payload.buffer).setUint32(0, from + i);
      window.conn.send(payload);
    }
  };
  window.echoed = (from, count) => { let n = 0; for (let i = from; i < from + count; i++) if (window.log.echoes.has(i)) n++; return n; };
  window.arrivals = (from, count) => { const out = []; for (let i = from; i < from + count; i++) { const t = window.log.echoes.get(i); if (t !== undefined) out.push(t); } return out.sort((a, b) => a - b); };
  window.summary = () => { const s = window.conn.stats(); return { relayId: s.relayId, backupId: s.backupId, failovers: s.failovers, switches: s.switches, fecMode: s.fecMode, upstreamScheme: s.upstreamScheme, lossBeforeFec: s.lossBeforeFec, lossAfterFec: s.lossAfterFec, recovered: s.recovered, sessionId: window.conn.sessionId, closed: window.conn.closed, closeReason: window.log.closeReason, paths: window.log.paths, errors: window.log.errors, peerConnections: window.conn.peerConnections, nowMs: performance.now() }; };
`;

/** A Chromium page on a fleet's page, ready for {@link PAGE_HELPERS}' `window.start`. */
export interface FleetPage {
  readonly page: Page;
  /** The page's uncaught errors (`pageerror: …`), for a test to assert empty. */
  readonly problems: string[];
}

/**
 * Launches Chromium (closed after the test file), opens `fleet.pageUrl`, waits up to
 * 15 s for the bundle to load (`window.ready`) and installs {@link PAGE_HELPERS}.
 */
export async function openFleetPage(fleet: BrowserFleet): Promise<FleetPage> {
  const launched = await launchChromium();
  after(() => launched.close());
  const page = await launched.context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(fleet.pageUrl);
  await page.waitForFunction(() => (globalThis as { ready?: boolean }).ready === true, undefined, { timeout: 15_000 });
  await page.evaluate(PAGE_HELPERS);
  return { page, problems };
}
