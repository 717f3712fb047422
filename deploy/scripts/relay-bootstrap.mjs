// Writes a relay's configuration from three values (what deploy/cloud-init asks for):
//   node deploy/scripts/relay-bootstrap.mjs --coordinator-url URL --fleet-credential CRED \
//        --region REGION [--out-dir /etc/slipstream] [--tunnel-listen 0.0.0.0:4433] \
//        [--metrics-listen 0.0.0.0:9464] [--drain-timeout-ms 900000] \
//        [--public-address IP] [--relay-id ID] [--latitude=DEG --longitude=DEG] \
//        [--capacity-sessions N]
// CRED is `v1.<fleetSecret>.<sealKey>` (deploy/scripts/fleet-credential.mjs prints it).
// It asks the coordinator for what else a relay needs and checks the credential:
//   GET  /v1/keys                        → tunnel.ticketPublicKey
//   GET  /v1/origins                     → tunnel.origins (entries whose address is an IP literal)
//   GET  /v1/revocations (fleet secret)  → 200, or it stops: a wrong credential fails here,
//                                          not later as a relay that silently misses revocations
// and writes OUT/relay.yaml, OUT/seal.key, OUT/fleet.secret and OUT/revoked.txt (mode 0640;
// the caller chowns them to root:slipstream). Exit 0 written, 1 coordinator unreachable
// or credential refused, 2 bad arguments (or a value that cannot be worked out).
//
// relay.yaml has a `fleet` section, so the relay registers with the coordinator and
// heartbeats (relay/README.md, "fleet"). Its values, unless given:
//   relayId        the host name up to its first dot, characters outside A-Za-z0-9._- as
//                  '-', at most 64; a generic name (localhost, debian, ubuntu, …) gets
//                  '-' and the first 8 characters of /etc/machine-id appended (without
//                  one, the tunnel address: 'localhost-203-0-113-7-4433')
//   tunnelAddress  <public address>:<tunnel port>. The public address: --public-address;
//                  else the --tunnel-listen IP when it is not 0.0.0.0/::; else the first
//                  non-loopback IPv4 of the machine's interfaces, a globally routable one
//                  first (a private one is used with a warning: behind 1:1 NAT, as on
//                  AWS, GCP or Azure, give --public-address)
//   latitude,      the region's entry in REGION_COORDINATES below; else the mean of the
//   longitude      coordinates of the coordinator's origins in that region; else exit 2
//                  asking for --latitude and --longitude
//   capacitySessions  the relay's default (limits.sessionsMax, 40000 here)
/* global fetch, AbortSignal, URL, Buffer */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP, isIPv4 } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const TIMEOUT_MS = 10_000;

/**
 * Where a relay of a region is, when --latitude/--longitude are not given: a city where
 * providers commonly place that region (degrees). Exact names only. The Ansible role has
 * the same table (deploy/ansible/roles/relay/vars/main.yml, relay_region_coordinates).
 */
const REGION_COORDINATES = {
  'eu-central': [50.11, 8.68], // Frankfurt
  'eu-west': [51.51, -0.13], // London
  'eu-north': [59.33, 18.07], // Stockholm
  'eu-south': [45.46, 9.19], // Milan
  'us-east': [39.04, -77.49], // Ashburn
  'us-central': [41.88, -87.63], // Chicago
  'us-south': [32.78, -96.8], // Dallas
  'us-west': [37.34, -121.89], // San Jose
  'ca-central': [45.5, -73.57], // Montreal
  'sa-east': [-23.55, -46.63], // São Paulo
  'ap-southeast': [1.35, 103.82], // Singapore
  'ap-northeast': [35.68, 139.69], // Tokyo
  'ap-east': [22.32, 114.17], // Hong Kong
  'ap-south': [19.08, 72.88], // Mumbai
  'au-east': [-33.87, 151.21], // Sydney
  'me-central': [25.2, 55.27], // Dubai
  'af-south': [-26.2, 28.05], // Johannesburg
};

/** Host names images ship with, which many machines share. */
const GENERIC_HOSTNAMES = new Set(['localhost', 'localhost.localdomain', 'debian', 'ubuntu', 'raspberrypi', 'vps', 'server', 'host', 'node']);

function fail(code, message) {
  process.stderr.write(`relay-bootstrap: ${message}\n`);
  process.exit(code);
}

function warn(message) {
  process.stderr.write(`relay-bootstrap: warning: ${message}\n`);
}

/** `[host]:port` or `host:port` → {host, port}, or undefined. */
function splitHostPort(text) {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text ?? '');
  if (!m || isIP(m[1]) === 0 || Number(m[2]) > 65535) return undefined;
  return { host: m[1], port: Number(m[2]) };
}

const joinHostPort = (host, port) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), 169.254/16: not reachable from the internet. */
function privateIPv4(address) {
  const [a, b] = address.split('.').map(Number);
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254);
}

/** The host name, made a relay id; a generic one gets the machine id (else the tunnel address, unique in a fleet) appended. */
function defaultRelayId(tunnelAddress) {
  const short = hostname().split('.')[0] ?? '';
  const id = short.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
  if (id.length > 0 && !GENERIC_HOSTNAMES.has(hostname().toLowerCase()) && !GENERIC_HOSTNAMES.has(id.toLowerCase())) return id;
  let suffix = '';
  try {
    suffix = readFileSync('/etc/machine-id', 'utf8').trim().slice(0, 8);
  } catch {
    // no machine id (some containers): the address below
  }
  if (!/^[0-9a-f]{8}$/.test(suffix)) suffix = tunnelAddress.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');
  return `${id.length > 0 ? id : 'relay'}-${suffix}`.slice(0, 64);
}

function defaultPublicAddress(tunnelHost) {
  if (tunnelHost !== '0.0.0.0' && tunnelHost !== '::') return tunnelHost;
  const candidates = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal && isIPv4(a.address))
    .map((a) => a.address);
  const found = candidates.find((a) => !privateIPv4(a)) ?? candidates[0];
  if (found === undefined) fail(2, 'no non-loopback IPv4 address on this machine to tell clients; give --public-address (SLIPSTREAM_PUBLIC_ADDRESS)');
  if (privateIPv4(found)) warn(`the tunnel address ${found} is a private address: clients on the internet cannot reach it. Behind 1:1 NAT give the public IP with --public-address (SLIPSTREAM_PUBLIC_ADDRESS)`);
  return found;
}

const ARGS = {
  options: {
    'coordinator-url': { type: 'string' },
    'fleet-credential': { type: 'string' },
    region: { type: 'string' },
    'out-dir': { type: 'string', default: '/etc/slipstream' },
    'tunnel-listen': { type: 'string', default: '0.0.0.0:4433' },
    'metrics-listen': { type: 'string', default: '0.0.0.0:9464' },
    'drain-timeout-ms': { type: 'string', default: '900000' },
    'public-address': { type: 'string' },
    'relay-id': { type: 'string' },
    latitude: { type: 'string' },
    longitude: { type: 'string' },
    'capacity-sessions': { type: 'string' },
  },
};
let values;
try {
  ({ values } = parseArgs(ARGS));
} catch (error) {
  // e.g. `--longitude -77.49`: a value starting with '-' is written `--longitude=-77.49`.
  fail(2, error instanceof Error ? error.message.replace(/\n/g, ' ') : String(error));
}
// Empty values mean "not given" (the cloud-init script passes optional values through as is).
for (const key of Object.keys(values)) if (values[key] === '') delete values[key];

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
  if (!splitHostPort(values[key])) fail(2, `--${key}: '${values[key]}' is not IP:port`);
}
const tunnelListen = splitHostPort(values['tunnel-listen']);
if (tunnelListen.port === 0) fail(2, '--tunnel-listen: give a fixed port (clients and other relays are told it)');
const drainMs = Number(values['drain-timeout-ms']);
if (!Number.isInteger(drainMs) || drainMs < 0 || drainMs > 3_600_000) fail(2, '--drain-timeout-ms: expected an integer from 0 to 3600000');

const publicAddress = values['public-address'];
if (publicAddress !== undefined) {
  // An IP, or IP:port when the public port differs from the tunnel port (port forwarding).
  const withPort = splitHostPort(publicAddress);
  if (withPort && withPort.port === 0) fail(2, `--public-address: '${publicAddress}' has port 0`);
  if (!withPort && isIP(publicAddress.replace(/^\[|\]$/g, '')) === 0) fail(2, `--public-address: '${publicAddress}' is not an IP address (or IP:port)`);
}
const tunnelAddress = publicAddress !== undefined && splitHostPort(publicAddress) ? publicAddress : joinHostPort(publicAddress?.replace(/^\[|\]$/g, '') ?? defaultPublicAddress(tunnelListen.host), tunnelListen.port);
const relayId = values['relay-id'] ?? defaultRelayId(tunnelAddress);
if (!/^[A-Za-z0-9._-]{1,64}$/.test(relayId)) fail(2, `--relay-id: '${relayId}' is not 1–64 of A-Z a-z 0-9 . _ - (unique in the fleet)`);
const coordinate = (key, min, max) => {
  if (values[key] === undefined) return undefined;
  const n = Number(values[key]);
  if (!/^-?\d+(\.\d+)?$/.test(values[key]) || n < min || n > max) fail(2, `--${key}: '${values[key]}' is not a number of degrees from ${min} to ${max}`);
  return n;
};
const given = [coordinate('latitude', -90, 90), coordinate('longitude', -180, 180)];
if ((given[0] === undefined) !== (given[1] === undefined)) fail(2, '--latitude and --longitude go together');
let capacitySessions;
if (values['capacity-sessions'] !== undefined) {
  capacitySessions = Number(values['capacity-sessions']);
  if (!/^\d+$/.test(values['capacity-sessions']) || capacitySessions < 1 || capacitySessions > 10_000_000) fail(2, '--capacity-sessions: expected an integer from 1 to 10000000');
}

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

// Where the relay is: given, else the region table, else the coordinator's origins there.
let where;
let whereFrom;
if (given[0] !== undefined) {
  where = given;
  whereFrom = '--latitude/--longitude';
} else if (Object.hasOwn(REGION_COORDINATES, region)) {
  where = REGION_COORDINATES[region];
  whereFrom = `the region table (${region})`;
} else {
  const placed = origins.filter((o) => o.region === region && typeof o.latitude === 'number' && typeof o.longitude === 'number');
  if (placed.length === 0) {
    fail(2, `region '${region}' has no known coordinates: give --latitude and --longitude (SLIPSTREAM_LATITUDE, SLIPSTREAM_LONGITUDE), use a region name the table knows (${Object.keys(REGION_COORDINATES).join(', ')}), or give the coordinator an origin in '${region}' with coordinates`);
  }
  where = [placed.reduce((sum, o) => sum + o.latitude, 0) / placed.length, placed.reduce((sum, o) => sum + o.longitude, 0) / placed.length].map((d) => Math.round(d * 100) / 100);
  whereFrom = `the coordinator's origins in ${region}`;
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
    '# Keys, defaults and ranges: relay/README.md. Edit (the fleet section and the secret file',
    '# too), then `systemctl reload slipstream-relay`.',
    'logLevel: info',
    'socketReceiveBufferBytes: 8388608',
    '# one relay worker per core (threads on the same ports); limits hold per worker',
    'workers: auto',
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
    '  # the feed\'s revocation list across restarts (the unit\'s StateDirectory; relay/README.md, "Revocations at start")',
    '  revocationStateFile: /var/lib/slipstream/relay-revocations.json',
    '# Registration with the coordinator and heartbeats (relay/README.md, "fleet").',
    'fleet:',
    `  relayId: '${relayId}'`,
    `  region: '${region}'`,
    `  # from ${whereFrom}`,
    `  latitude: ${where[0]}`,
    `  longitude: ${where[1]}`,
    '  # what clients are told to tunnel to (and other relays probe)',
    `  tunnelAddress: '${tunnelAddress}'`,
    ...(capacitySessions !== undefined ? [`  capacitySessions: ${capacitySessions}`] : []),
    '',
  ].join('\n'),
);
process.stdout.write(`relay-bootstrap: wrote ${join(out, 'relay.yaml')} (relay ${relayId}, region ${region} at ${where[0]},${where[1]}, tunnel address ${tunnelAddress}, ${tunnelOrigins.length} origins, ticket key ${keys.ticketPublicKey})\n`);
