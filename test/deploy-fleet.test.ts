/**
 * deploy/cloud-init, deploy/scripts, deploy/docker/healthcheck.mjs and deploy/monitoring,
 * against real processes on loopback:
 *  - the cloud-init user-data validates with `cloud-init schema` (Debian's cloud-init)
 *    and its install script parses and uses only files the release archive holds;
 *  - the guide's bootstrap by hand: a coordinator from the example config, the fleet
 *    credential printed from it, relay-bootstrap.mjs writing relay.yaml from the three
 *    values, the relay started exactly as the unit starts it; a session issued by the
 *    coordinator opens, forwards to an origin and is ended by a revocation through the
 *    coordinator's feed;
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
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import YAML from 'yaml';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../proto/src/header.js';
import { decodeControl } from '../proto/src/control.js';
import { CoordinatorClient } from '../coordinator/src/client.js';
import { buildControlPacket, buildPacket } from '../relay/src/core/wire.js';
import { collectJsonLines } from './support/json-lines.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const USER_DATA = join(DEPLOY, 'cloud-init', 'relay-user-data.yaml');
const dir = mkdtempSync(join(tmpdir(), 'slipstream-deploy-fleet-'));
const children = new Set<ChildProcess>();
/** Every UDP socket a test opens, closed at the end even when an assertion fails (an open socket would keep the test process alive). */
const sockets = new Set<dgram.Socket>();
function udpSocket(): dgram.Socket {
  const socket = dgram.createSocket('udp4');
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  return socket;
}
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const socket of sockets) {
    try {
      socket.close();
    } catch {
      // already closed
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A started process and its JSON log lines. */
class Proc {
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly child: ChildProcess) {
    children.add(child);
    collectJsonLines(child.stdout!, this.lines);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }
  async waitLog(match: (line: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    for (let waited = 0; waited < timeoutMs; waited += 20) {
      const found = this.lines.find(match);
      if (found) return found;
      if (this.child.exitCode !== null) throw new Error(`process exited with ${this.child.exitCode} waiting for ${what}; stderr: ${this.stderr}`);
      await sleep(20);
    }
    throw new Error(`no log line for ${what} within ${timeoutMs} ms; last: ${JSON.stringify(this.lines.slice(-3))}`);
  }
}

async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  for (let waited = 0; waited < timeoutMs; waited += 10) {
    if (predicate()) return;
    await sleep(10);
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function freeTcpPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
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
    const config = { ...example, listen: `127.0.0.1:${await freeTcpPort()}`, logLevel: 'warn', origins: [{ name: 'game', address: `127.0.0.1:${origin.address().port}`, region: 'local' }], keys: { ticketSigningSeed: b64(), sealKey: b64(), fleetSecret: b64(), apiKeys: [apiKey] } };
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
    const [tunnelPort, metricsPort] = [await freeUdpPort(), await freeUdpPort()];
    const out = join(dir, 'etc-slipstream');
    const bootstrap = (credentialText: string): ReturnType<typeof node> =>
      node([join(DEPLOY, 'scripts', 'relay-bootstrap.mjs'), '--coordinator-url', url, '--fleet-credential', credentialText, '--region', 'eu-central', '--out-dir', out, '--tunnel-listen', `127.0.0.1:${tunnelPort}`, '--metrics-listen', `127.0.0.1:${metricsPort}`, '--drain-timeout-ms', '3000']);

    // A wrong fleet secret is caught at bootstrap, not later.
    const wrong = bootstrap(`v1.${randomBytes(24).toString('base64')}.${cred.split('.')[2]}`);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /refused the fleet secret \(403\)/);
    const good = bootstrap(cred);
    assert.equal(good.status, 0, good.stderr);
    const relayYaml = join(out, 'relay.yaml');
    const written = YAML.parse(readFileSync(relayYaml, 'utf8')) as { tunnel: { ticketPublicKey: string; origins: Record<string, string>; coordinatorUrl: string } };
    const keys = (await (await fetch(`${url}/v1/keys`)).json()) as { ticketPublicKey: string };
    assert.equal(written.tunnel.ticketPublicKey, keys.ticketPublicKey);
    assert.deepEqual(written.tunnel.origins, { game: `127.0.0.1:${origin.address().port}` });
    assert.equal(written.tunnel.coordinatorUrl, url);

    // The relay exactly as the unit starts it, on the written file.
    const argv = relayExecStart(relayYaml);
    const relay = new Proc(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
    await relay.waitLog((l) => l.msg === 'relay started', 15_000, 'relay started');

    // A game backend asks the coordinator for a session; the client opens it at the relay.
    const backend = new CoordinatorClient({ baseUrl: url, apiKey });
    const issued = await backend.issueSession({ origin: 'game', ttlS: 600 });
    const [high, low] = [Number.parseInt(issued.sessionId.slice(0, 8), 16), Number.parseInt(issued.sessionId.slice(8), 16)];
    const client = udpSocket();
    const replies: Buffer[] = [];
    client.on('message', (m) => replies.push(m));
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
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
    for (const m of ['slipstream_relay_packets_total', 'slipstream_coordinator_store_up', 'slipstream_relay_draining']) assert.ok(referenced.has(m), m);
    // Label values the expressions filter on.
    assert.match(scrape, /slipstream_coordinator_http_request_duration_seconds_bucket\{[^}]*route="GET \/v1\/route"/);
    assert.match(scrape, /slipstream_relay_packets_total\{rule="tunnel",protocol="tunnel",direction="upstream"\} [1-9]/);
    for (const reason of ['session_cap', 'junk', 'amplification']) assert.match(scrape, new RegExp(`slipstream_relay_drops_total\\{reason="${reason}"\\}`));
    assert.match(scrape, /slipstream_coordinator_relays\{health="unhealthy"\}/);

    // The coordinator revokes the session: the relay, following the feed with the fleet
    // secret from the credential, ends it within seconds.
    await backend.revokeSession(issued.sessionId);
    await until(() => replies.some((r) => r[2] === PacketType.Close), 5000, 'a Close after the coordinator revoked the session');
    await relay.waitLog((l) => l.event === 'revocations' && l.source === url, 1000, 'the revocation from the feed');

    // SIGTERM: while the relay drains, the container health check says unhealthy. A live
    // session keeps the drain going until drain.timeoutMs.
    const second = udpSocket();
    const secondReplies: Buffer[] = [];
    second.on('message', (m) => secondReplies.push(m));
    await new Promise<void>((resolve) => second.bind(0, '127.0.0.1', resolve));
    const issued2 = await backend.issueSession({ origin: 'game', ttlS: 600 });
    const [h2, l2] = [Number.parseInt(issued2.sessionId.slice(0, 8), 16), Number.parseInt(issued2.sessionId.slice(8), 16)];
    second.send(buildControlPacket(h2, l2, { type: 'sessionOpen', ticket: new Uint8Array(Buffer.from(issued2.ticket, 'base64')), fecModes: ['off'] }), tunnelPort, '127.0.0.1');
    await until(() => secondReplies.length > 0, 5000, 'the second session');
    relay.child.kill('SIGTERM');
    await relay.waitLog((l) => l.event === 'draining', 5000, 'draining');
    const drainingHealth = health(relay.child.pid!);
    assert.equal(drainingHealth.status, 1, drainingHealth.stdout);
    assert.match(drainingHealth.stdout, /unhealthy: relay .* 503/);
    assert.deepEqual(await relay.exited, { code: 0, signal: null });
    client.close();
    second.close();
  });
});
