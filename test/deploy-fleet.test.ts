/**
 * deploy/cloud-init, deploy/scripts, deploy/docker/healthcheck.mjs and deploy/monitoring,
 * against real processes on loopback:
 *  - the cloud-init user-data validates with `cloud-init schema` (Debian's cloud-init)
 *    and its install script parses and uses only files the release archive holds;
 *  - the guide's bootstrap by hand: a coordinator from the example config, the fleet
 *    credential printed from it, relay-bootstrap.mjs writing relay.yaml from the three
 *    values, the relay started exactly as the unit starts it; it registers with the
 *    coordinator (in /v1/fleet and offered by /v1/route, its heartbeats carrying its
 *    sessions); a session issued by the coordinator opens, forwards to an origin and is
 *    ended by a revocation through the coordinator's feed; SIGTERM shows as draining;
 *  - what relay-bootstrap.mjs works out when not told: relay id, public address,
 *    coordinates (region table, the coordinator's origins, or it asks);
 *  - the container health check answers for the relay and the coordinator (and fails
 *    while the relay drains);
 *  - every metric the Grafana dashboard and the alert rules use is exported by the
 *    running relay or coordinator.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../proto/src/header.js';
import { decodeControl } from '../proto/src/control.js';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import type { FleetRelay } from '../coordinator/src/core/coordinator-core.js';
import { buildControlPacket, buildPacket } from '../proto/src/wire.js';
import { JsonLogProcess } from './support/json-lines.js';
import { freePort, udpClient, udpSocket } from './support/sockets.js';
import { eventually, until } from './support/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const USER_DATA = join(DEPLOY, 'cloud-init', 'relay-user-data.yaml');
const dir = mkdtempSync(join(tmpdir(), 'slipstream-deploy-fleet-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A started process and its JSON log lines, killed by the `after` hook if still running. */
class Proc extends JsonLogProcess {
  constructor(child: ChildProcess) {
    super(child);
    children.add(child);
  }
}

function node(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** ExecStart of the relay unit with the install paths mapped onto this checkout. */
function relayExecStart(config: string): string[] {
  const unit = readFileSync(join(DEPLOY, 'systemd', 'slipstream-relay.service'), 'utf8');
  const line = /^ExecStart=(.*)$/m.exec(unit)![1]!;
  return line.split(/\s+/).map((w) => (w === '/usr/bin/node' ? process.execPath : w.replace('/opt/slipstream/current/', ROOT).replace('/etc/slipstream/relay.yaml', config)));
}

describe('deploy: cloud-init', () => {
  test('cloud-init schema validates the user-data', () => {
    const r = spawnSync('cloud-init', ['schema', '--config-file', USER_DATA], { encoding: 'utf8' });
    assert.equal(r.error, undefined, `cloud-init must be installed (Debian package cloud-init): ${String(r.error)}`);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /Valid cloud-config/);
  });

  test('the install script parses, takes the three values, and uses only files the release archive holds', () => {
    const doc = YAML.parse(readFileSync(USER_DATA, 'utf8')) as { write_files: { path: string; content: string }[]; runcmd: string[][] };
    const env = doc.write_files.find((f) => f.path === '/etc/slipstream/bootstrap.env')!.content;
    for (const key of ['SLIPSTREAM_COORDINATOR_URL', 'SLIPSTREAM_FLEET_CREDENTIAL', 'SLIPSTREAM_REGION']) assert.match(env, new RegExp(`^${key}=`, 'm'));
    const script = doc.write_files.find((f) => f.path === '/usr/local/sbin/slipstream-relay-install')!;
    assert.deepEqual(doc.runcmd, [[script.path]]);
    // The optional values: empty in the file (= the bootstrap's defaults), each passed on
    // to relay-bootstrap.mjs (an unset one as '', which it takes as not given).
    for (const [key, flag] of [
      ['SLIPSTREAM_PUBLIC_ADDRESS', '--public-address'],
      ['SLIPSTREAM_RELAY_ID', '--relay-id'],
      ['SLIPSTREAM_LATITUDE', '--latitude'],
      ['SLIPSTREAM_LONGITUDE', '--longitude'],
      ['SLIPSTREAM_CAPACITY_SESSIONS', '--capacity-sessions'],
    ]) {
      assert.match(env, new RegExp(`^${key}=$`, 'm'), key);
      assert.ok(script.content.includes(`${flag}="\${${key}:-}"`), `${key} is passed as ${flag}=… (a negative coordinate is a value)`);
    }
    const path = join(dir, 'install.sh');
    writeFileSync(path, script.content);
    const syntax = spawnSync('bash', ['-n', path], { encoding: 'utf8' });
    assert.equal(syntax.status, 0, syntax.stderr);
    // The script reads these from the unpacked release: they must be in the archive.
    const used = [...new Set([...script.content.matchAll(/\/opt\/slipstream\/current\/(\S+)/g)].map((m) => m[1]!))];
    assert.deepEqual(used.sort(), ['deploy/scripts/relay-bootstrap.mjs', 'deploy/sysctl/90-slipstream.conf', 'deploy/systemd/slipstream-relay.service']);
    const build = spawnSync(join(DEPLOY, 'scripts', 'build-release.sh'), ['--no-build', join(dir, 'release')], { encoding: 'utf8', cwd: ROOT });
    assert.equal(build.status, 0, build.stderr);
    const archive = build.stdout.trim().split('\n').at(-1)!;
    const listing = spawnSync('tar', ['-tzf', archive], { encoding: 'utf8', maxBuffer: 1 << 24 }).stdout.split('\n');
    const top = listing[0]!.split('/')[0]!;
    for (const file of [...used, 'dist/cli/slipstream.js', 'package-lock.json']) assert.ok(listing.includes(`${top}/${file}`), `${file} is in ${archive}`);
    assert.ok(!listing.some((f) => f.endsWith('.test.js')), 'no compiled tests in the release');
    // The checksum file the user-data asks for.
    const sum = spawnSync('sha256sum', ['--check', `${archive.split('/').at(-1)}.sha256`], { encoding: 'utf8', cwd: join(dir, 'release') });
    assert.equal(sum.status, 0, sum.stderr);
  });
});

describe('deploy: a relay bootstrapped from three values, the health check and the metrics', () => {
  let coordinator: Proc;
  let url = '';
  let apiKey = '';
  let configPath = '';
  let origin: dgram.Socket;

  before(async () => {
    origin = udpSocket();
    origin.on('message', (msg, from) => origin.send(Buffer.concat([Buffer.from('echo|'), msg]), from.port, from.address));
    await new Promise<void>((resolve) => origin.bind(0, '127.0.0.1', resolve));
    // The example coordinator config with real keys, a loopback port and a local origin.
    const b64 = (): string => randomBytes(32).toString('base64');
    apiKey = b64();
    const example = YAML.parse(readFileSync(join(DEPLOY, 'examples', 'coordinator.yaml'), 'utf8')) as Record<string, unknown>;
    // A fixed port, as in production: the health check reads it from the config.
    // A second origin, in region 'lab' with coordinates, for the bootstrap's coordinate fallback.
    const config = {
      ...example,
      listen: `127.0.0.1:${await freePort('tcp')}`,
      logLevel: 'warn',
      origins: [
        { name: 'game', address: `127.0.0.1:${origin.address().port}`, region: 'local' },
        { name: 'lab-game', address: '127.0.0.1:9', region: 'lab', latitude: 48.21, longitude: 16.37 },
      ],
      keys: { ticketSigningSeed: b64(), sealKey: b64(), fleetSecret: b64(), apiKeys: [apiKey] },
    };
    configPath = join(dir, 'coordinator.yaml');
    writeFileSync(configPath, YAML.stringify(config));
    const unit = readFileSync(join(DEPLOY, 'systemd', 'slipstream-coordinator.service'), 'utf8');
    const argv = /^ExecStart=(.*)$/m
      .exec(unit)![1]!
      .split(/\s+/)
      .map((w) => (w === '/usr/bin/node' ? process.execPath : w.replace('/opt/slipstream/current/', ROOT).replace('/etc/slipstream/coordinator.yaml', configPath)));
    coordinator = new Proc(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
    await until(() => /listening on (http:\/\/\S+)/.test(coordinator.stderr), 15_000, 'the coordinator');
    url = /listening on (http:\/\/\S+)/.exec(coordinator.stderr)![1]!;
  });
  after(() => {
    coordinator.child.kill('SIGTERM');
    origin.close();
  });

  test('bootstrap, session, forwarding, revocation, health check, metrics', async () => {
    const credential = node([join(DEPLOY, 'scripts', 'fleet-credential.mjs'), configPath]);
    assert.equal(credential.status, 0, credential.stderr);
    const cred = credential.stdout.trim();
    assert.match(cred, /^v1\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]+$/);
    const [tunnelPort, metricsPort] = [await freePort('udp'), await freePort('udp')];
    const out = join(dir, 'etc-slipstream');
    // The three values; the rest as the guide says for one machine: loopback ports, and a
    // drain deadline far beyond the test (the drain below ends when its last session does).
    const bootstrap = (credentialText: string): ReturnType<typeof node> =>
      node([join(DEPLOY, 'scripts', 'relay-bootstrap.mjs'), '--coordinator-url', url, '--fleet-credential', credentialText, '--region', 'eu-central', '--out-dir', out, '--tunnel-listen', `127.0.0.1:${tunnelPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, '--drain-timeout-ms', '600000']);

    // A wrong fleet secret is caught at bootstrap, not later.
    const wrong = bootstrap(`v1.${randomBytes(24).toString('base64')}.${cred.split('.')[2]}`);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /refused the fleet secret \(403\)/);
    const good = bootstrap(cred);
    assert.equal(good.status, 0, good.stderr);
    const relayYaml = join(out, 'relay.yaml');
    const written = YAML.parse(readFileSync(relayYaml, 'utf8')) as { tunnel: { ticketPublicKey: string; origins: Record<string, string>; coordinatorUrl: string }; fleet: { relayId: string } };
    const keys = (await (await fetch(`${url}/v1/keys`)).json()) as { ticketPublicKey: string };
    assert.equal(written.tunnel.ticketPublicKey, keys.ticketPublicKey);
    assert.deepEqual(written.tunnel.origins, { game: `127.0.0.1:${origin.address().port}`, 'lab-game': '127.0.0.1:9' });
    assert.equal(written.tunnel.coordinatorUrl, url);
    // The relay id comes from the host name (relay-bootstrap.mjs's header says how).
    const relayId = written.fleet.relayId;
    const short = hostname().split('.')[0]!.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
    assert.match(relayId, /^[A-Za-z0-9._-]{1,64}$/);
    assert.ok(short.length === 0 || relayId === short || relayId.startsWith(`${short}-`), `relay id ${relayId} from host name ${hostname()}`);

    // The relay exactly as the unit starts it, on the written file.
    const argv = relayExecStart(relayYaml);
    const relay = new Proc(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
    await relay.waitLog((l) => l.msg === 'relay started', 15_000, 'relay started');

    // It registers: the coordinator's fleet list names it, healthy, with what the bootstrap
    // worked out (region, the region's coordinates, the tunnel address clients are told).
    const fleetApi = new CoordinatorClient({ baseUrl: url });
    const listed = (want: (r: FleetRelay) => boolean, what: string): Promise<FleetRelay> => eventually(async () => (await fleetApi.fleet()).relays.find((r) => r.relayId === relayId && want(r)), 15_000, what);
    const registered = await listed((r) => r.health === 'healthy', `relay ${relayId} registered and healthy in /v1/fleet`);
    assert.equal(registered.region, 'eu-central');
    assert.deepEqual([registered.latitude, registered.longitude], [50.11, 8.68], 'eu-central from the region table');
    assert.equal(registered.tunnelAddress, `127.0.0.1:${tunnelPort}`);
    assert.equal(registered.probeAddress, `127.0.0.1:${tunnelPort}`);
    assert.equal(registered.capacitySessions, 40_000, 'capacity: limits.sessionsMax');
    await relay.waitLog((l) => l.event === 'fleet_registered' && l.relayId === relayId, 5000, 'the relay logging its registration');

    // A game backend asks the coordinator for a session; the client opens it at the relay.
    const backend = new CoordinatorClient({ baseUrl: url, apiKey });
    const issued = await backend.issueSession({ origin: 'game', ttlS: 600 });
    const [high, low] = [Number.parseInt(issued.sessionId.slice(0, 8), 16), Number.parseInt(issued.sessionId.slice(8), 16)];
    const { socket: client, replies } = await udpClient();
    client.send(buildControlPacket(high, low, { type: 'sessionOpen', ticket: new Uint8Array(Buffer.from(issued.ticket, 'base64')), fecModes: ['off'] }), tunnelPort, '127.0.0.1');
    await until(() => replies.length > 0, 5000, 'an answer to sessionOpen');
    const accept = decodeControl(replies[0]!.subarray(HEADER_BYTES));
    assert.ok(accept.ok && accept.message.type === 'sessionAccept', `sessionAccept (ticket key from the coordinator, seal key from the credential): ${JSON.stringify(accept)}`);
    // Data through the tunnel to the origin and back.
    const header = new PacketHeader();
    client.send(buildPacket(PacketType.Data, high, low, 1, Buffer.from('player-input'.padEnd(40, '.'))), tunnelPort, '127.0.0.1');
    await until(() => replies.some((r) => parseHeader(r, header) === 0 && header.type === PacketType.Data), 5000, 'the origin echo through the tunnel');
    const echo = replies.find((r) => parseHeader(r, header) === 0 && header.type === PacketType.Data)!;
    assert.match(echo.subarray(HEADER_BYTES).toString(), /^echo\|player-input/);

    // Its heartbeats arrive: the coordinator learns the open session from them.
    await listed((r) => r.health === 'healthy' && r.load.sessions === 1, 'a heartbeat carrying the open session');
    // And the coordinator offers it to clients of the origin.
    const route = await backend.route({ origin: 'game' });
    assert.equal(route.candidates[0]?.relayId, relayId, JSON.stringify(route));
    assert.equal(route.candidates[0]?.tunnelAddress, `127.0.0.1:${tunnelPort}`);

    // Docker's health check, pointed at the two processes.
    const health = (pid: number): ReturnType<typeof node> => node([join(DEPLOY, 'docker', 'healthcheck.mjs'), '--pid', String(pid)]);
    const relayHealth = health(relay.child.pid!);
    assert.equal(relayHealth.status, 0, relayHealth.stdout);
    assert.match(relayHealth.stdout, new RegExp(`healthy: relay http://127.0.0.1:${metricsPort}/health → 200`));
    const coordinatorHealth = health(coordinator.child.pid!);
    assert.equal(coordinatorHealth.status, 0, coordinatorHealth.stdout);
    assert.match(coordinatorHealth.stdout, /healthy: coordinator http:\/\/127\.0\.0\.1:\d+\/health → 200/);

    // Metrics: every name the dashboard and the alerts use is exported by these processes.
    await backend.route({ origin: 'game' });
    const scrape = (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()) + (await (await fetch(`${url}/metrics`)).text());
    const exported = new Set([...scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap((m) => (m[2] === 'histogram' ? [m[1]!, `${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]!])));
    const dashboard = readFileSync(join(DEPLOY, 'monitoring', 'grafana-dashboard.json'), 'utf8');
    const alerts = readFileSync(join(DEPLOY, 'monitoring', 'alerts.yml'), 'utf8');
    const panels = (JSON.parse(dashboard) as { panels: { type: string; targets?: { expr: string }[] }[] }).panels;
    const exprs = [...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...(YAML.parse(alerts) as { groups: { rules: { expr: string }[] }[] }).groups.flatMap((g) => g.rules.map((r) => r.expr))];
    assert.ok(panels.filter((p) => p.type !== 'row').length >= 20 && exprs.length >= 30, 'a real dashboard and rule set');
    const referenced = new Set(exprs.flatMap((e) => [...e.matchAll(/\bslipstream_[a-z_]+\b/g)].map((m) => m[0])));
    const missing = [...referenced].filter((name) => !exported.has(name));
    assert.deepEqual(missing, [], 'metrics the dashboard or alerts use but no process exports');
    for (const m of ['slipstream_relay_packets_total', 'slipstream_coordinator_store_up', 'slipstream_relay_draining', 'slipstream_relay_fleet_accepted']) assert.ok(referenced.has(m), m);
    assert.match(scrape, /^slipstream_relay_fleet_accepted 1$/m, 'the registered relay is accepted');
    // Label values the expressions filter on.
    assert.match(scrape, /slipstream_coordinator_http_request_duration_seconds_bucket\{[^}]*route="GET \/v1\/route"/);
    assert.match(scrape, /slipstream_relay_packets_total\{rule="tunnel",protocol="tunnel",direction="upstream"\} [1-9]/);
    for (const reason of ['session_cap', 'junk', 'amplification']) assert.match(scrape, new RegExp(`slipstream_relay_drops_total\\{reason="${reason}"\\}`));
    assert.match(scrape, /slipstream_coordinator_relays\{health="unhealthy"\} 0/);
    assert.match(scrape, /slipstream_coordinator_relays\{health="healthy"\} 1/);

    // The coordinator revokes the session: the relay, following the feed with the fleet
    // secret from the credential, ends it within seconds.
    await backend.revokeSession(issued.sessionId);
    await until(() => replies.some((r) => r[2] === PacketType.Close), 5000, 'a Close after the coordinator revoked the session');
    await relay.waitLog((l) => l.event === 'revocations' && l.source === url, 1000, 'the revocation from the feed');

    // SIGTERM: while the relay drains, the coordinator lists it as draining and the
    // container health check says unhealthy. A live session keeps the drain going (the
    // deadline is 10 minutes) until the coordinator revokes it; then the relay exits 0.
    const { socket: second, replies: secondReplies } = await udpClient();
    const issued2 = await backend.issueSession({ origin: 'game', ttlS: 600 });
    const [h2, l2] = [Number.parseInt(issued2.sessionId.slice(0, 8), 16), Number.parseInt(issued2.sessionId.slice(8), 16)];
    second.send(buildControlPacket(h2, l2, { type: 'sessionOpen', ticket: new Uint8Array(Buffer.from(issued2.ticket, 'base64')), fecModes: ['off'] }), tunnelPort, '127.0.0.1');
    await until(() => secondReplies.length > 0, 5000, 'the second session');
    relay.child.kill('SIGTERM');
    await relay.waitLog((l) => l.event === 'draining', 5000, 'draining');
    await listed((r) => r.health === 'draining', 'the coordinator listing the relay as draining');
    const drainingHealth = health(relay.child.pid!);
    assert.equal(drainingHealth.status, 1, drainingHealth.stdout);
    assert.match(drainingHealth.stdout, /unhealthy: relay .* 503/);
    await backend.revokeSession(issued2.sessionId);
    await until(() => relay.child.exitCode !== null || relay.child.signalCode !== null, 15_000, 'the relay to exit once its last session was revoked');
    assert.deepEqual(await relay.exited, { code: 0, signal: null });
    await until(() => relay.lines.some((l) => l.event === 'stopped'), 5000, "the relay's stopped line");
    assert.equal(relay.lines.find((l) => l.event === 'stopped')?.sessionsCut, 0, 'the drain ended with its last session');
    client.close();
    second.close();
  });

  test('relay-bootstrap.mjs works out the relay id, public address and coordinates, or asks for them', () => {
    const cred = node([join(DEPLOY, 'scripts', 'fleet-credential.mjs'), configPath]).stdout.trim();
    type Fleet = { relayId: string; region: string; latitude: number; longitude: number; tunnelAddress: string; capacitySessions?: number };
    const run = (name: string, extra: string[]): ReturnType<typeof node> & { fleet?: Fleet } => {
      const out = join(dir, `bootstrap-${name}`);
      const r = node([join(DEPLOY, 'scripts', 'relay-bootstrap.mjs'), '--coordinator-url', url, '--fleet-credential', cred, '--out-dir', out, ...extra]);
      if (r.status !== 0) return r;
      // Slipstream accepts what was written, fleet section included.
      const check = node([join(ROOT, 'dist', 'cli', 'slipstream.js'), 'relay', '--check', '--config', join(out, 'relay.yaml')]);
      assert.equal(check.status, 0, `${name}: relay --check: ${check.stdout}${check.stderr}`);
      return { ...r, fleet: (YAML.parse(readFileSync(join(out, 'relay.yaml'), 'utf8')) as { fleet: Fleet }).fleet };
    };

    // Everything given: the optional values of the cloud-init file.
    const given = run('given', ['--region', 'ap-southeast', '--tunnel-listen', '0.0.0.0:4433', '--public-address', '203.0.113.7', '--relay-id', 'sin-9', '--capacity-sessions', '800']);
    assert.equal(given.status, 0, given.stderr);
    assert.deepEqual(given.fleet, { relayId: 'sin-9', region: 'ap-southeast', latitude: 1.35, longitude: 103.82, tunnelAddress: '203.0.113.7:4433', capacitySessions: 800 });
    // A public port other than the tunnel's (port forwarding).
    const forwarded = run('forwarded', ['--region', 'us-east', '--public-address', '203.0.113.7:14433']);
    assert.equal(forwarded.status, 0, forwarded.stderr);
    assert.equal(forwarded.fleet?.tunnelAddress, '203.0.113.7:14433');
    assert.deepEqual([forwarded.fleet?.latitude, forwarded.fleet?.longitude], [39.04, -77.49]);

    // Nothing given (empty, as cloud-init passes unset values): the address from the
    // interfaces, the coordinates from the coordinator's origins in the region.
    const derived = run('derived', ['--region', 'lab', '--tunnel-listen', '0.0.0.0:4433', '--public-address=', '--relay-id=', '--latitude=', '--longitude=', '--capacity-sessions=']);
    const ipv4 = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && !a.internal && a.family === 'IPv4')
      .map((a) => a!.address);
    if (ipv4.length === 0) {
      assert.equal(derived.status, 2);
      assert.match(derived.stderr, /no non-loopback IPv4 address on this machine.*--public-address/);
    } else {
      assert.equal(derived.status, 0, derived.stderr);
      const host = derived.fleet!.tunnelAddress.replace(/:4433$/, '');
      assert.ok(ipv4.includes(host), `tunnel address ${derived.fleet!.tunnelAddress} is one of this machine's IPv4 addresses ${ipv4.join(', ')}`);
      assert.deepEqual([derived.fleet!.latitude, derived.fleet!.longitude], [48.21, 16.37], "the coordinator's origin in region lab");
      assert.equal(derived.fleet!.capacitySessions, undefined, 'the relay default');
    }

    // A region nobody places: it asks, and takes the coordinates when given.
    const unknown = run('unknown', ['--region', 'local', '--public-address', '203.0.113.7']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /region 'local' has no known coordinates: give --latitude and --longitude \(SLIPSTREAM_LATITUDE, SLIPSTREAM_LONGITUDE\)/);
    // As the cloud-init script passes them (--flag=value: a negative number is a value).
    const placed = run('placed', ['--region', 'local', '--public-address', '203.0.113.7', '--latitude=-12.5', '--longitude=-3.25']);
    assert.equal(placed.status, 0, placed.stderr);
    assert.deepEqual([placed.fleet?.latitude, placed.fleet?.longitude], [-12.5, -3.25]);
    // Written with a space, a negative number reads as a flag: said plainly, exit 2.
    const spaced = run('spaced', ['--region', 'local', '--public-address', '203.0.113.7', '--latitude', '12.5', '--longitude', '-3.25']);
    assert.equal(spaced.status, 2);
    assert.match(spaced.stderr, /^relay-bootstrap: Option '--longitude' argument is ambiguous/);
    const half = run('half', ['--region', 'local', '--public-address', '203.0.113.7', '--latitude', '12.5']);
    assert.equal(half.status, 2);
    assert.match(half.stderr, /--latitude and --longitude go together/);
    const badId = run('bad-id', ['--region', 'us-east', '--public-address', '203.0.113.7', '--relay-id', 'no spaces']);
    assert.equal(badId.status, 2);
    assert.match(badId.stderr, /--relay-id: 'no spaces' is not 1–64/);
  });
});
