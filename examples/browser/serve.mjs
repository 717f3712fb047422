// Serves the browser example on http://127.0.0.1:8080/ (loopback is a secure context,
// so WebCrypto works): the page, the compiled package (dist/) and msgpackr, read-only,
// and what a game's own web server adds in front of Slipstream:
//   /ticket   the game backend: POST /v1/session at the coordinator with the API key
//             (which stays on the server) and hands the answer to the page;
//   /coord/*  the coordinator's API on the page's own origin (the coordinator sends no
//             CORS headers; a game serves both from one origin, or puts CORS in front).
// Start the fleet first (`node examples/local-fleet.mjs --keep-running` prints both values):
//   npm run build && node examples/browser/serve.mjs --coordinator URL --api-key KEY [--port 8080]
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' }, coordinator: { type: 'string' }, 'api-key': { type: 'string' }, origin: { type: 'string', default: 'game' } } });
if (!values.coordinator || !values['api-key']) {
  console.error('usage: node examples/browser/serve.mjs --coordinator URL --api-key KEY [--port 8080] [--origin game]');
  process.exit(2);
}
const COORDINATOR = values.coordinator.replace(/\/+$/, '');
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ALLOWED = [join(ROOT, 'dist') + sep, join(ROOT, 'node_modules', 'msgpackr') + sep];
const TYPES = { '.js': 'text/javascript', '.html': 'text/html' };

/** Forwards one request to the coordinator and its answer back. */
async function forward(req, res, url, init) {
  try {
    const answer = await fetch(url, init);
    res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(Buffer.from(await answer.arrayBuffer()));
  } catch (e) {
    res.writeHead(502, { 'content-type': 'text/plain' }).end(`coordinator unreachable: ${e.message}`);
  }
}

createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  if (path === '/favicon.ico') return res.writeHead(204).end();
  if (path === '/ticket') {
    const body = JSON.stringify({ origin: values.origin });
    return void forward(req, res, `${COORDINATOR}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${values['api-key']}` }, body });
  }
  if (path.startsWith('/coord/')) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      void forward(req, res, `${COORDINATOR}${req.url.slice('/coord'.length)}`, { method: req.method, body, headers: body ? { 'content-type': 'application/json' } : {} });
    });
    return;
  }
  const file = path === '/' ? join(ROOT, 'examples', 'browser', 'index.html') : normalize(join(ROOT, path));
  const allowed = path === '/' || ALLOWED.some((dir) => file.startsWith(dir));
  if (!allowed || !statSync(file, { throwIfNoEntry: false })?.isFile()) return res.writeHead(404).end();
  res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
}).listen(Number(values.port), '127.0.0.1', () => console.log(`http://127.0.0.1:${values.port}/`));
