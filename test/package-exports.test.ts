/**
 * The package as a game developer gets it: `npm pack`, unpacked into a fresh project's
 * node_modules (no network: the one dependency the SDK entries need, msgpackr, is
 * linked from this repository's node_modules, and nothing else is — so an entry that
 * needed ioredis, pino, yaml or prom-client would fail to load). There,
 * `slipstream/sdk`, `slipstream/browser` and `slipstream/origin` import and work in Node
 * (connect() rejects an unreachable coordinator with its stable code; the origin parser
 * reads a PROXY v2 datagram), their type declarations resolve under `tsc --strict` (the
 * browser entry's with the DOM library and no Node types), and paths the package does
 * not export stay private. The tarball holds no tests and no source maps.
 * `slipstream/browser` (its `connect()` included) bundles with esbuild for the browser
 * platform, with no Node polyfills, from the fresh project.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';

const run = promisify(execFile);
/** dist/test/package-exports.test.js → the repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Bound on each child step (npm pack, tar, node, tsc), ms. */
const STEP_TIMEOUT_MS = 60_000;

/** The consumer's Node program: every entry imported by its package name, each used once. */
const NODE_CONSUMER = `
import { connect, SlipstreamError, ErrorCode, TunnelClient, nodeHmacSha256 } from 'slipstream/sdk';
import { encodeProxyV2, parseProxyHeader } from 'slipstream/origin';
import * as browser from 'slipstream/browser';
const out = {};
const datagram = new Uint8Array([...encodeProxyV2('udp', { address: '203.0.113.7', port: 51000 }, { address: '10.0.0.2', port: 27015 }), 1, 2, 3]);
const parsed = parseProxyHeader(datagram);
out.origin = parsed.ok ? { source: parsed.header.source, payload: [...datagram.subarray(parsed.header.headerBytes)] } : parsed;
try {
  await connect({ coordinator: 'http://127.0.0.1:1', origin: 'eu', ticket: { sessionId: '0123456789abcdef', ticket: new Uint8Array(8), sessionKey: new Uint8Array(32) }, coordinatorTimeoutMs: 2000 });
  out.connect = 'resolved';
} catch (e) {
  out.connect = e instanceof SlipstreamError ? e.code : String(e);
}
out.unreachableCode = ErrorCode.CoordinatorUnreachable;
const client = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(8), sessionKey: new Uint8Array(32), hmac: nodeHmacSha256 });
out.nodeClient = typeof client.pollTransmit;
out.browser = ['TunnelClient', 'RelaySelector', 'FecSender', 'FecReceiver', 'webCryptoHmacSha256', 'serveMacJobs'].filter((n) => typeof browser[n] !== 'function');
try {
  await import('slipstream/dist/sdk/src/connect.js');
  out.deepImport = 'allowed';
} catch (e) {
  out.deepImport = e.code;
}
console.log(JSON.stringify(out));
`;

/** The consumer's TypeScript for Node: the SDK and origin entries' declarations. */
const TS_NODE_CONSUMER = `
import { connect, SlipstreamError, type Connection, type ConnectOptions, type TicketGrant } from 'slipstream/sdk';
import { parseProxyHeader, type ProxyParseResult } from 'slipstream/origin';
export async function play(options: ConnectOptions): Promise<number> {
  const conn: Connection = await connect(options);
  conn.on('message', (bytes: Uint8Array) => void bytes.length);
  const ok: boolean = conn.send(new Uint8Array(4));
  const r: ProxyParseResult = parseProxyHeader(new Uint8Array(0));
  const grant: TicketGrant = { sessionId: '0123456789abcdef', ticket: 'AA==', sessionKey: 'AA==' };
  void grant;
  if (!ok || !r.ok) throw new SlipstreamError('SLIP_ERR_NO_RELAY', 'x');
  return r.header.headerBytes;
}
// @ts-expect-error the package exports no such path
import('slipstream/dist/sdk/src/connect.js');
`;

/** The consumer's TypeScript for a browser: DOM library, no Node types. */
const TS_BROWSER_CONSUMER = `
import { TunnelClient, webCryptoHmacSha256, serveMacJobs, connect, type BrowserConnection, type TunnelFrameTransport, type TunnelClientEvent } from 'slipstream/browser';
import { parseProxyHeader } from 'slipstream/origin';
export async function play(): Promise<BrowserConnection> {
  const conn = await connect({ coordinator: location.origin, origin: 'game', ticketProvider: () => fetch('/ticket').then((r) => r.json()) });
  conn.on('message', (bytes: Uint8Array) => conn.send(bytes));
  conn.on('close', (reason) => console.log(reason?.code));
  return conn;
}
export function start(transport: TunnelFrameTransport): TunnelClient {
  const hmac = webCryptoHmacSha256();
  const client = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(8), sessionKey: new Uint8Array(32), hmac });
  transport.onReceive((bytes, from) => client.handleDatagram(performance.now(), from, bytes));
  const drain = (): void => {
    for (let e: TunnelClientEvent | undefined = client.pollEvent(); e; e = client.pollEvent()) console.log(e.type);
    for (let t = client.pollTransmit(); t; t = client.pollTransmit()) transport.send(t.bytes, t.to);
    serveMacJobs(client, hmac, () => performance.now(), drain);
  };
  drain();
  void parseProxyHeader;
  return client;
}
`;

const TSCONFIG_BASE = { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: false };

describe('the packed package in a fresh project', () => {
  let work: string;
  let project: string;
  let tarball: string;
  let packedFiles: string[];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'slip-pack-'));
    // --ignore-scripts: this run's dist/ is what is packed (prepare would rebuild it).
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: REPO_ROOT, timeout: STEP_TIMEOUT_MS, maxBuffer: 16 << 20 });
    const packed = (JSON.parse(stdout) as { filename: string; files: { path: string }[] }[])[0]!;
    tarball = join(work, packed.filename);
    packedFiles = packed.files.map((f) => f.path);
    project = join(work, 'game');
    const pkgDir = join(project, 'node_modules', 'slipstream');
    mkdirSync(pkgDir, { recursive: true });
    await run('tar', ['-xzf', tarball, '-C', pkgDir, '--strip-components=1'], { timeout: STEP_TIMEOUT_MS });
    // Only what the entries need (and the types a Node consumer compiles against).
    symlinkSync(join(REPO_ROOT, 'node_modules', 'msgpackr'), join(project, 'node_modules', 'msgpackr'), 'dir');
    mkdirSync(join(project, 'node_modules', '@types'));
    symlinkSync(join(REPO_ROOT, 'node_modules', '@types', 'node'), join(project, 'node_modules', '@types', 'node'), 'dir');
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'game', private: true, type: 'module' }));
  });
  after(() => {
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  test('the tarball holds the three entries with their declarations and the CLI, and no tests or source maps', () => {
    for (const f of ['dist/sdk/src/index.js', 'dist/sdk/src/index.d.ts', 'dist/sdk/src/browser/index.js', 'dist/sdk/src/browser/index.d.ts', 'dist/proto/src/origin.js', 'dist/proto/src/origin.d.ts', 'dist/cli/slipstream.js', 'package.json']) {
      assert.ok(packedFiles.includes(f), `${f} is packed`);
    }
    assert.deepEqual(packedFiles.filter((f) => /\.test\.|\.map$|tsbuildinfo|\/test\//.test(f)), []);
  });

  test('in Node, slipstream/sdk, slipstream/origin and slipstream/browser import by name and work, with only msgpackr installed; unexported paths stay private', async () => {
    writeFileSync(join(project, 'main.mjs'), NODE_CONSUMER);
    assert.deepEqual(readdirSync(join(project, 'node_modules')).sort(), ['@types', 'msgpackr', 'slipstream']);
    const { stdout } = await run(process.execPath, ['main.mjs'], { cwd: project, timeout: STEP_TIMEOUT_MS });
    const out = JSON.parse(stdout) as Record<string, unknown>;
    assert.deepEqual(out.origin, { source: { address: '203.0.113.7', port: 51000 }, payload: [1, 2, 3] });
    assert.equal(out.connect, out.unreachableCode);
    assert.equal(out.nodeClient, 'function');
    assert.deepEqual(out.browser, [], 'every named browser export is there');
    assert.equal(out.deepImport, 'ERR_PACKAGE_PATH_NOT_EXPORTED');
  });

  test('the type declarations resolve under tsc --strict: Node consumer with @types/node, browser consumer with the DOM library and no Node types', async () => {
    writeFileSync(join(project, 'node-game.ts'), TS_NODE_CONSUMER);
    writeFileSync(join(project, 'browser-game.ts'), TS_BROWSER_CONSUMER);
    writeFileSync(join(project, 'tsconfig.node.json'), JSON.stringify({ compilerOptions: { ...TSCONFIG_BASE, lib: ['ES2022'], types: ['node'] }, files: ['node-game.ts'] }));
    writeFileSync(join(project, 'tsconfig.browser.json'), JSON.stringify({ compilerOptions: { ...TSCONFIG_BASE, lib: ['ES2022', 'DOM'], types: [] }, files: ['browser-game.ts'] }));
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    for (const config of ['tsconfig.node.json', 'tsconfig.browser.json']) {
      const result = await run(process.execPath, [tsc, '-p', config], { cwd: project, timeout: STEP_TIMEOUT_MS }).then(
        () => '',
        (e: { stdout?: string }) => e.stdout ?? String(e),
      );
      assert.equal(result, '', `${config}:\n${result}`);
    }
    // The check can fail: a wrong use of the declarations is an error.
    writeFileSync(join(project, 'wrong.ts'), "import { parseProxyHeader } from 'slipstream/origin';\nconst n: number = parseProxyHeader(new Uint8Array(0));\nvoid n;\n");
    writeFileSync(join(project, 'tsconfig.wrong.json'), JSON.stringify({ compilerOptions: { ...TSCONFIG_BASE, lib: ['ES2022'], types: [] }, files: ['wrong.ts'] }));
    const wrong = await run(process.execPath, [tsc, '-p', 'tsconfig.wrong.json'], { cwd: project, timeout: STEP_TIMEOUT_MS }).then(
      () => '',
      (e: { stdout?: string }) => e.stdout ?? String(e),
    );
    assert.match(wrong, /TS2322/);
  });

  test('slipstream/browser bundles with esbuild for the browser (platform=browser, no Node polyfills), and a Node-only import fails that bundle', async () => {
    const bundle = (contents: string): Promise<{ outputFiles?: { text: string }[] }> =>
      build({ stdin: { contents, resolveDir: project, loader: 'js' }, bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent' });
    const ok = await bundle("export { connect, TunnelClient } from 'slipstream/browser';");
    const text = ok.outputFiles![0]!.text;
    assert.ok(text.includes('RTCPeerConnection') && !/\brequire\(/.test(text), 'the bundle holds the WebRTC driver and no require()');
    // The check can fail: the Node SDK entry imports node:dgram, which the browser platform cannot resolve.
    await assert.rejects(bundle("export { connect } from 'slipstream/sdk';"), /Could not resolve "node:/);
  });
});
