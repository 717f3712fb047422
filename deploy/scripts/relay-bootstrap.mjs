// Writes a relay's configuration from three values (what deploy/cloud-init asks for):
//   node deploy/scripts/relay-bootstrap.mjs --coordinator-url URL --fleet-credential CRED \
//        --region REGION [--out-dir /etc/slipstream] [--tunnel-listen 0.0.0.0:4433] \
//        [--metrics-listen 0.0.0.0:9464] [--drain-timeout-ms 900000]
// CRED is `v1.<fleetSecret>.<sealKey>` (deploy/scripts/fleet-credential.mjs prints it).
// It asks the coordinator for what else a relay needs and checks the credential:
//   GET  /v1/keys                        → tunnel.ticketPublicKey
//   GET  /v1/origins                     → tunnel.origins (entries whose address is an IP literal)
//   GET  /v1/revocations (fleet secret)  → 200, or it stops: a wrong credential fails here,
//                                          not later as a relay that silently misses revocations
// and writes OUT/relay.yaml, OUT/seal.key, OUT/fleet.secret and OUT/revoked.txt (mode 0640;
// the caller chowns them to root:slipstream). Exit 0 written, 1 coordinator unreachable
// or credential refused, 2 bad arguments.
/* global fetch, AbortSignal, URL, Buffer */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const TIMEOUT_MS = 10_000;

function fail(code, message) {
  process.stderr.write(`relay-bootstrap: ${message}\n`);
  process.exit(code);
}

const { values } = parseArgs({
  options: {
    'coordinator-url': { type: 'string' },
    'fleet-credential': { type: 'string' },
    region: { type: 'string' },
    'out-dir': { type: 'string', default: '/etc/slipstream' },
    'tunnel-listen': { type: 'string', default: '0.0.0.0:4433' },
    'metrics-listen': { type: 'string', default: '0.0.0.0:9464' },
    'drain-timeout-ms': { type: 'string', default: '900000' },
  },
});

const url = (values['coordinator-url'] ?? '').replace(/\/+$/, '');
if (!/^https?:\/\/\S+$/.test(url)) fail(2, `--coordinator-url: '${url}' is not an http(s):// URL`);
const credential = /^v1\.([A-Za-z0-9+/]+={0,2})\.([A-Za-z0-9+/]+={0,2})$/.exec(values['fleet-credential'] ?? '');
if (!credential) fail(2, '--fleet-credential: expected v1.<fleetSecret>.<sealKey> (deploy/scripts/fleet-credential.mjs prints it)');
const [, fleetSecret, sealKey] = credential;
if (Buffer.from(sealKey, 'base64').length !== 32) fail(2, '--fleet-credential: the seal key part is not 32 bytes of base64');
if (Buffer.from(fleetSecret, 'base64').length < 16) fail(2, '--fleet-credential: the fleet secret part is shorter than 16 bytes');
const region = values.region ?? '';
if (!/^[A-Za-z0-9._-]{1,64}$/.test(region)) fail(2, `--region: '${region}' is not 1–64 of A-Z a-z 0-9 . _ -`);
for (const key of ['tunnel-listen', 'metrics-listen']) {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(values[key]);
  if (!m || isIP(m[1]) === 0 || Number(m[2]) > 65535) fail(2, `--${key}: '${values[key]}' is not IP:port`);
}
const drainMs = Number(values['drain-timeout-ms']);
if (!Number.isInteger(drainMs) || drainMs < 0 || drainMs > 3_600_000) fail(2, '--drain-timeout-ms: expected an integer from 0 to 3600000');

async function get(path, auth) {
  let response;
  try {
    response = await fetch(new URL(path, `${url}/`), { headers: auth ? { authorization: `Bearer ${auth}` } : {}, signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (error) {
    fail(1, `cannot reach the coordinator at ${url}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const body = await response.text();
  if (response.status === 401 || response.status === 403) fail(1, `${path}: the coordinator refused the fleet secret (${response.status}); check the fleet credential`);
  if (response.status !== 200) fail(1, `${path}: HTTP ${response.status} ${body.slice(0, 200)}`);
  return JSON.parse(body);
}

const keys = await get('v1/keys');
if (typeof keys.ticketPublicKey !== 'string' || Buffer.from(keys.ticketPublicKey, 'base64').length !== 32) fail(1, 'v1/keys: no 32-byte ticketPublicKey in the answer');
await get(`v1/revocations?sinceMs=${Date.now()}&waitMs=0`, fleetSecret);
const { origins = [] } = await get('v1/origins');
const tunnelOrigins = [];
for (const origin of origins) {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(origin.address ?? '');
  if (m && isIP(m[1]) !== 0) tunnelOrigins.push(`    ${JSON.stringify(origin.name)}: ${JSON.stringify(origin.address)}`);
  else process.stderr.write(`relay-bootstrap: origin ${origin.name} has no IP-literal address (${origin.address ?? 'none'}); tickets for it will be refused until it is added to tunnel.origins by hand\n`);
}

const out = values['out-dir'];
mkdirSync(out, { recursive: true });
const file = (name, text) => writeFileSync(join(out, name), text, { mode: 0o640 });
file('seal.key', `${sealKey}\n`);
file('fleet.secret', `${fleetSecret}\n`);
if (!existsSync(join(out, 'revoked.txt'))) file('revoked.txt', '# one 16-hex session id per line; read by slipstream-relay every tunnel.revocationPollMs\n');
file(
  'relay.yaml',
  [
    `# Written by deploy/scripts/relay-bootstrap.mjs for region ${region} from ${url}.`,
    '# Keys, defaults and ranges: relay/README.md. Edit, then `systemctl reload slipstream-relay`.',
    'logLevel: info',
    'socketReceiveBufferBytes: 8388608',
    'metrics:',
    `  listen: ${values['metrics-listen']}`,
    'drain:',
    `  timeoutMs: ${drainMs}`,
    'limits:',
    '  # below the ~49 000 ephemeral ports one upstreamBindAddress has (deploy/README.md, sizing)',
    '  sessionsMax: 40000',
    'tunnel:',
    `  listen: ${values['tunnel-listen']}`,
    `  ticketPublicKey: '${keys.ticketPublicKey}'`,
    `  sealKeyFile: ${join(out, 'seal.key')}`,
    ...(tunnelOrigins.length > 0 ? ['  origins:', ...tunnelOrigins] : ['  origins: {}']),
    `  revocationFile: ${join(out, 'revoked.txt')}`,
    `  coordinatorUrl: ${url}`,
    `  coordinatorFleetSecretFile: ${join(out, 'fleet.secret')}`,
    '',
  ].join('\n'),
);
process.stdout.write(`relay-bootstrap: wrote ${join(out, 'relay.yaml')} (region ${region}, ${tunnelOrigins.length} origins, ticket key ${keys.ticketPublicKey})\n`);
