/**
 * `slipstream/browser` runs in a browser and `slipstream/origin` anywhere: a walk of
 * each entry's import graph (TypeScript's parser, over the sources) finds no `node:*`
 * module, no Node builtin and no package beyond the entry's allowed dependencies, and
 * the graph type-checks against the browser's libraries (ES2022 + DOM, no Node types),
 * so no Node global (`Buffer`, `process`, `require`, …) is used. Then a real headless
 * Chromium (Debian's, through playwright-core, as the dashboard test drives it) loads
 * the compiled browser entry as ES modules from a local HTTP server (msgpackr through an
 * import map), constructs a `TunnelClient` with the WebCrypto HMAC, and produces a
 * session open, FEC-coded data and a path response whose MAC the relay's own
 * `node:crypto` check accepts.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { builtinModules } from 'node:module';
import { dirname, extname, join, normalize, posix, resolve, sep } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { launchChromium, type LaunchedBrowser } from '../coordinator/scripts/browser.js';
import { decodeControl } from '../proto/src/control.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../proto/src/header.js';
import { verifyPathResponseMac } from '../proto/src/wire.js';

/** dist/test/browser-entry.test.js → the repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The entries that must not need Node, and the packages each may import. */
const PORTABLE_ENTRIES: readonly { readonly entry: string; readonly packages: readonly string[] }[] = [
  { entry: 'sdk/src/browser/index.ts', packages: ['msgpackr'] },
  { entry: 'proto/src/origin.ts', packages: [] },
];

interface ModuleFacts {
  /** Relative imports, resolved to repository-relative `.ts` paths. */
  readonly local: string[];
  /** Every other module specifier. */
  readonly bare: string[];
}

/** What one source file imports (static, re-exports, dynamic), read with TypeScript's parser. */
function factsOf(file: string): ModuleFacts {
  const text = readFileSync(join(REPO_ROOT, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const facts: ModuleFacts = { local: [], bare: [] };
  const addSpecifier = (spec: string): void => {
    if (spec.startsWith('.')) facts.local.push(posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, '.ts'));
    else facts.bare.push(spec);
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      addSpecifier(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] !== undefined && ts.isStringLiteral(node.arguments[0])) {
      addSpecifier(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return facts;
}

/** Every module reachable from `entry` (repository-relative paths), with its facts. */
function importGraph(entry: string): Map<string, ModuleFacts> {
  const graph = new Map<string, ModuleFacts>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (graph.has(file)) continue;
    const facts = factsOf(file);
    graph.set(file, facts);
    queue.push(...facts.local);
  }
  return graph;
}

const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** The modules `entry`'s graph imports that a browser has not: Node builtins and packages beyond `packages` (readable lines; empty: none). */
function nodeOnlyImports(entry: string, packages: readonly string[]): string[] {
  const problems: string[] = [];
  for (const [file, facts] of importGraph(entry)) {
    for (const spec of facts.bare) {
      if (spec.startsWith('node:') || NODE_BUILTINS.has(spec.split('/')[0]!)) problems.push(`${file} imports the Node builtin '${spec}'`);
      else if (!packages.includes(spec)) problems.push(`${file} imports '${spec}', not among this entry's dependencies (${packages.join(', ') || 'none'})`);
    }
  }
  return problems;
}

/**
 * Type-checks `entry` and what it imports as a browser would see them: the ES2022 and
 * DOM libraries and no Node types, so a use of `Buffer`, `process`, `require`,
 * `setImmediate` or a `node:*` module is an error. Returns the errors in repository
 * files as readable lines (empty: none).
 */
function browserTypeErrors(entry: string): string[] {
  const program = ts.createProgram([join(REPO_ROOT, entry)], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: [],
    strict: true,
    skipLibCheck: true,
    noEmit: true,
  });
  const inRepo = (f: ts.SourceFile | undefined): boolean => f !== undefined && !f.fileName.includes('/node_modules/');
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file === undefined || inRepo(d.file))
    .map((d) => {
      const where = d.file === undefined ? '' : `${d.file.fileName.slice(REPO_ROOT.length + 1)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: `;
      return `${where}${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    });
}

for (const { entry, packages } of PORTABLE_ENTRIES) {
  test(`${entry} and everything it imports use no Node API (no node:* module, builtin or Node global; packages only ${packages.join(', ') || 'none'})`, () => {
    const graph = importGraph(entry);
    assert.ok(graph.size >= (entry.includes('browser') ? 30 : 2), `walked ${graph.size} modules`);
    assert.deepEqual(nodeOnlyImports(entry, packages), []);
    assert.deepEqual(browserTypeErrors(entry), []);
  });
}

test('the checks catch a Node import, a Node global and an undeclared package (so the checks above can fail)', () => {
  // The Node SDK's UDP transport imports node:dgram and uses Buffer: what the browser entry must not.
  const imports = nodeOnlyImports('sdk/src/udp-transport.ts', ['msgpackr']);
  assert.ok(imports.some((p) => /imports the Node builtin 'node:dgram'/.test(p)), imports.join('\n'));
  assert.ok(nodeOnlyImports('proto/src/control.ts', []).some((p) => /imports 'msgpackr', not among/.test(p)));
  const errors = browserTypeErrors('sdk/src/udp-transport.ts');
  assert.ok(errors.some((e) => /Cannot find name 'Buffer'/.test(e)), errors.join('\n'));
  assert.ok(errors.some((e) => /node:dgram/.test(e)), errors.join('\n'));
});

/** Content types of what the page loads. */
const CONTENT_TYPES: Readonly<Record<string, string>> = { '.js': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };

/**
 * Serves `/` (the page), `/dist/**` (the compiled repository) and `/node_modules/msgpackr/**`
 * read-only from the repository, on 127.0.0.1 (a secure context, so WebCrypto is there).
 */
function servePage(page: string): Promise<{ server: Server; url: string }> {
  const roots = [join(REPO_ROOT, 'dist') + sep, join(REPO_ROOT, 'node_modules', 'msgpackr') + sep];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(page);
      return;
    }
    const file = normalize(join(REPO_ROOT, path));
    if (!roots.some((r) => file.startsWith(r)) || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/` })));
}

/**
 * The page: imports the browser entry, runs a TunnelClient against a relay scripted in
 * the page (probe replies, an accept in mode `sw`), sends one datagram, then answers a
 * path challenge through WebCrypto. Reports the transmitted datagrams (hex) and any error.
 */
const PAGE = `<!doctype html><meta charset="utf-8"><title>slipstream/browser</title>
<script type="importmap">{ "imports": { "msgpackr": "/node_modules/msgpackr/index.js" } }</script>
<script type="module">
import { TunnelClient, webCryptoHmacSha256, serveMacJobs, createKernel } from '/dist/sdk/src/browser/index.js';
import { pack } from 'msgpackr';
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const RELAY = { address: '10.0.0.1', port: 4433 };
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
window.run = async () => {
  const hmac = webCryptoHmacSha256();
  const client = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: KEY, hmac, warmBackup: false });
  const sent = [];
  let now = 0;
  const drain = () => {
    for (let i = 0; i < 1000; i++) {
      while (client.pollEvent() !== undefined);
      const t = client.pollTransmit();
      if (t === undefined) break;
      sent.push(hex(t.bytes));
      // The scripted relay: a probe comes back as its reply (type byte 2 flipped).
      if (t.bytes[2] === window.PROBE) { const r = new Uint8Array(t.bytes); r[2] = window.PROBE_REPLY; client.handleDatagram(now, RELAY, r); }
    }
    serveMacJobs(client, hmac, () => now, drain, (e) => { window.macError = String(e); });
  };
  client.setCandidates(0, [{ id: 'A', tunnel: RELAY, probe: RELAY }]);
  drain();
  for (now = 5; now <= 3000 && !sent.some((s) => s.includes(window.OPEN_MARK)); now += 5) { client.handleTimeout(now); drain(); }
  client.handleDatagram(now, RELAY, window.accept);
  drain();
  client.send(now, new TextEncoder().encode('hello from the page'));
  drain();
  const before = sent.length;
  client.handleDatagram(now, RELAY, window.challenge);
  drain();
  for (let i = 0; i < 100 && !sent.slice(before).some((s) => parseInt(s.slice(4, 6), 16) === window.PATH_RESPONSE); i++) await new Promise((r) => setTimeout(r, 10));
  return { sent, isOpen: client.isOpen, kernel: createKernel().backend, macError: window.macError ?? null, msgpackr: typeof pack };
};
window.ready = true;
</script>`;

describe('slipstream/browser in headless Chromium', () => {
  let launched: LaunchedBrowser;
  let served: { server: Server; url: string };

  before(async () => {
    statSync(join(REPO_ROOT, 'dist', 'sdk', 'src', 'browser', 'index.js'));
    served = await servePage(PAGE);
    launched = await launchChromium();
  });
  after(async () => {
    await launched?.close();
    await new Promise((ok) => (served ? served.server.close(ok) : ok(undefined)));
  });

  test('loads as ES modules, and a TunnelClient with the WebCrypto HMAC opens a session, codes data and answers a path challenge the relay accepts', async () => {
    const { buildControlPacket, buildPacket } = await import('../proto/src/wire.js');
    const HIGH = 0x01234567;
    const LOW = 0x89abcdef;
    const KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
    const nonce = Uint8Array.from({ length: 16 }, (_, i) => 200 - i);
    const page = await launched.context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    await page.goto(served.url);
    await page.waitForFunction(() => (globalThis as { ready?: boolean }).ready === true, undefined, { timeout: 15_000 });
    const accept = buildControlPacket(HIGH, LOW, { type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'sw' });
    const challenge = buildPacket(PacketType.PathChallenge, HIGH, LOW, 0, nonce);
    // The header's type byte sits at offset 2; a session open is a Control packet whose msgpack names `sessionOpen`.
    const openMark = Buffer.from('sessionOpen').toString('hex');
    const result = await page.evaluate(
      async (a) => {
        const w = globalThis as unknown as Record<string, unknown> & { run: () => Promise<unknown> };
        Object.assign(w, { accept: Uint8Array.from(a.accept), challenge: Uint8Array.from(a.challenge), PROBE: a.probe, PROBE_REPLY: a.probeReply, PATH_RESPONSE: a.pathResponse, OPEN_MARK: a.openMark });
        return w.run();
      },
      { accept: [...accept], challenge: [...challenge], probe: PacketType.Probe, probeReply: PacketType.ProbeReply, pathResponse: PacketType.PathResponse, openMark },
    );
    const r = result as { sent: string[]; isOpen: boolean; kernel: string; macError: string | null; msgpackr: string };
    assert.deepEqual(problems, []);
    assert.equal(r.macError, null);
    assert.equal(r.isOpen, true, 'the session opened in the page');
    assert.equal(r.msgpackr, 'function');
    const h = new PacketHeader();
    const packets = r.sent.map((s) => {
      const bytes = Uint8Array.from(Buffer.from(s, 'hex'));
      assert.equal(parseHeader(bytes, h), 0, 'every datagram the page sent has a valid header');
      return { type: h.type, bytes };
    });
    const opens = packets.filter((p) => p.type === PacketType.Control).map((p) => decodeControl(p.bytes.subarray(HEADER_BYTES))).filter((m) => m.ok && m.message.type === 'sessionOpen');
    assert.ok(opens.length >= 1, 'a sessionOpen went out');
    const open = opens[0]!;
    assert.ok(open.ok && open.message.type === 'sessionOpen' && open.message.fecModes.includes('sw'));
    assert.ok(packets.some((p) => p.type === PacketType.Data), 'the datagram went out as Data after the accept');
    const responses = packets.filter((p) => p.type === PacketType.PathResponse);
    assert.equal(responses.length, 1, 'one path response, after the WebCrypto MAC came back');
    const body = responses[0]!.bytes.subarray(HEADER_BYTES);
    assert.deepEqual([...body.subarray(0, 16)], [...nonce]);
    assert.ok(verifyPathResponseMac(KEY, HIGH, LOW, nonce, body.subarray(16)), "the relay's node:crypto check accepts the page's MAC");
    assert.match(r.kernel, /^(wasm-simd|js)$/);
    await page.close();
  });
});
