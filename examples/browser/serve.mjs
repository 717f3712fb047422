// Serves the browser example on http://127.0.0.1:8080/ (loopback is a secure context,
// so WebCrypto works): the page, the compiled package (dist/) and msgpackr, read-only.
//   npm run build && node examples/browser/serve.mjs [--port 8080]
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' } } });
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ALLOWED = [join(ROOT, 'dist') + sep, join(ROOT, 'node_modules', 'msgpackr') + sep];
const TYPES = { '.js': 'text/javascript', '.html': 'text/html' };

createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  if (path === '/favicon.ico') return res.writeHead(204).end();
  const file = path === '/' ? join(ROOT, 'examples', 'browser', 'index.html') : normalize(join(ROOT, path));
  const allowed = path === '/' || ALLOWED.some((dir) => file.startsWith(dir));
  if (!allowed || !statSync(file, { throwIfNoEntry: false })?.isFile()) return res.writeHead(404).end();
  res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
}).listen(Number(values.port), '127.0.0.1', () => console.log(`http://127.0.0.1:${values.port}/`));
