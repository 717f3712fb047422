/**
 * Revocation fails closed at start (issue 14, row 5), on real processes on loopback: a
 * `slipstream coordinator` on a fixed port (so it can be stopped and started again at the
 * same URL) and `slipstream relay` processes following its revocation feed.
 *
 * - A relay restarted while the coordinator is down still refuses a ticket revoked before
 *   the restart: it keeps the feed's list in `tunnel.revocationStateFile` and loads it
 *   before the tunnel opens.
 * - A relay with no list (none persisted, or a corrupt file) and the coordinator down
 *   refuses new sessions with `SLIP_ERR_RELAY_REVOCATIONS_STALE`, says so in its log and
 *   metrics, and admits them once the feed answers.
 * - With `tunnel.revocationStalePolicy: admit` such a relay admits them (a ticket revoked
 *   before its start included), and its log and metrics say so.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeControl } from '../proto/src/control.js';
import { ErrorCode } from '../proto/src/errors.js';
import { HEADER_BYTES } from '../proto/src/header.js';
import { buildControlPacket } from '../proto/src/wire.js';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { CliProcess } from './support/cli-process.js';
import { fleetKeys, type FleetKeys } from './support/local-fleet.js';
import { freePort, udpEchoOrigin, type UdpEchoOrigin } from './support/sockets.js';
import { eventually, until } from './support/wait.js';

let dir: string;
let origin: UdpEchoOrigin;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slip-revoc-start-'));
  origin = await udpEchoOrigin();
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A coordinator on `port` (memory store: a restart forgets its revocations), resolving once it listens. */
async function startCoordinator(keys: FleetKeys, port: number): Promise<CliProcess> {
  const config = join(dir, `coordinator-${port}.yaml`);
  writeFileSync(
    config,
    ['listen: 127.0.0.1:' + port, 'store: memory', 'logLevel: warn', 'origins:', '  - { name: game }', 'keys:', `  ticketSigningSeed: ${keys.seed.toString('base64')}`, `  sealKey: ${keys.sealKey.toString('base64')}`, `  fleetSecret: ${keys.fleetSecret}`, `  apiKeys: [${keys.apiKey}]`].join('\n'),
  );
  const proc = CliProcess.start(['coordinator', '--config', config]);
  await proc.waitFor(/listening on http:/, 'stderr', 15_000);
  return proc;
}

/** relay.yaml following the coordinator at `coordinatorPort`, plus `extra` tunnel keys. */
function relayYaml(keys: FleetKeys, coordinatorPort: number, metricsPort: number, extra: readonly string[]): string {
  return [
    'upstreamBindAddress: 127.0.0.1',
    `metrics: { listen: "127.0.0.1:${metricsPort}" }`,
    'drain: { timeoutMs: 200 }',
    'tunnel:',
    '  listen: 127.0.0.1:0',
    `  ticketPublicKey: ${keys.publicKey}`,
    `  sealKey: ${keys.sealKey.toString('base64')}`,
    `  origins: { game: 127.0.0.1:${origin.port} }`,
    `  coordinatorUrl: http://127.0.0.1:${coordinatorPort}`,
    `  coordinatorFleetSecret: ${keys.fleetSecret}`,
    ...extra.map((line) => `  ${line}`),
  ].join('\n');
}

/** Starts `slipstream relay` on `yaml`; resolves with the process and its tunnel port once it logged `relay started`. */
async function startRelay(name: string, yaml: string): Promise<{ proc: CliProcess; tunnelPort: number }> {
  const config = join(dir, `${name}.yaml`);
  writeFileSync(config, yaml);
  const proc = CliProcess.start(['relay', '--config', config, '--log-level', 'info']);
  const started = await proc.waitFor(/"tunnel":\{"address":"[0-9.]+","port":(\d+)\}.*"msg":"relay started"/, 'stdout', 15_000);
  return { proc, tunnelPort: Number(started[1]) };
}

/** The relay's log lines so far with this `event`. */
function logEvents(proc: CliProcess, event: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of proc.stdout.split('\n')) {
    if (!line.includes(`"event":"${event}"`)) continue;
    out.push(JSON.parse(line) as Record<string, unknown>);
  }
  return out;
}

/** One value of the relay's `/metrics`. */
async function metric(metricsPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} in /metrics`);
  return m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]);
}

let clientHost = 10;
/**
 * Sends a sessionOpen with `ticket` from a fresh 127.0.0.x socket and resolves with the
 * relay's answer: `accept`, or the refusal's code.
 */
async function open(tunnelPort: number, sessionId: string, ticketBase64: string): Promise<string> {
  const socket = dgram.createSocket('udp4');
  const host = `127.0.0.${clientHost++}`;
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  const replies: Buffer[] = [];
  socket.on('message', (m) => replies.push(m));
  const [high, low] = [Number.parseInt(sessionId.slice(0, 8), 16), Number.parseInt(sessionId.slice(8), 16)];
  socket.send(buildControlPacket(high, low, { type: 'sessionOpen', ticket: new Uint8Array(Buffer.from(ticketBase64, 'base64')), fecModes: ['off'] }), tunnelPort, '127.0.0.1');
  try {
    await until(() => replies.length > 0, 5000, `an answer to the sessionOpen from ${host}`);
  } finally {
    socket.close();
  }
  const decoded = decodeControl(replies[0]!.subarray(HEADER_BYTES));
  assert.ok(decoded.ok, 'a control message');
  if (decoded.message.type === 'sessionAccept') return 'accept';
  assert.equal(decoded.message.type, 'sessionReject');
  return (decoded.message as { reason: string }).reason;
}

describe('slipstream relay: revocation fails closed at start', () => {
  test('a relay restarted while the coordinator is down refuses a ticket revoked before the restart (its persisted list) and admits the others', async () => {
    const keys = fleetKeys();
    const coordinatorPort = await freePort();
    const coordinator = await startCoordinator(keys, coordinatorPort);
    const stateFile = join(dir, 'restart-state.json');
    const yaml = relayYaml(keys, coordinatorPort, await freePort(), [`revocationStateFile: ${stateFile}`]);
    const first = await startRelay('restart', yaml);
    const backend = new CoordinatorClient({ baseUrl: `http://127.0.0.1:${coordinatorPort}`, apiKey: keys.apiKey });
    const revoked = await backend.issueSession({ origin: 'game', ttlS: 600 });
    const valid = await backend.issueSession({ origin: 'game', ttlS: 600 });
    await backend.revokeSession(revoked.sessionId);
    await until(() => logEvents(first.proc, 'revocations').some((l) => l.revoked === 1), 10_000, 'the relay to hear the revocation');
    await eventually(() => {
      try {
        return readFileSync(stateFile, 'utf8').includes(revoked.sessionId) ? true : undefined;
      } catch {
        return undefined;
      }
    }, 10_000, 'the revocation in the state file');
    await coordinator.stop();
    await first.proc.stop();

    const second = await startRelay('restart', yaml);
    assert.equal(await open(second.tunnelPort, revoked.sessionId, revoked.ticket), ErrorCode.TicketRevoked, 'the ticket revoked before the restart is refused');
    assert.equal(await open(second.tunnelPort, valid.sessionId, valid.ticket), 'accept', 'the persisted list is current enough: other tickets are admitted');
    assert.ok(logEvents(second.proc, 'revocation_state').some((l) => l.loaded === 1), 'the relay says it loaded the list');
    assert.deepEqual(logEvents(second.proc, 'revocations_stale'), []);
    await second.proc.stop();
  });

  test('a relay with no usable list and the coordinator down refuses new sessions and says so; once the feed answers it admits them', async () => {
    const keys = fleetKeys();
    const coordinatorPort = await freePort();
    const metricsPort = await freePort();
    let coordinator = await startCoordinator(keys, coordinatorPort);
    const backend = new CoordinatorClient({ baseUrl: `http://127.0.0.1:${coordinatorPort}`, apiKey: keys.apiKey });
    const early = await backend.issueSession({ origin: 'game', ttlS: 600 });
    const later = await backend.issueSession({ origin: 'game', ttlS: 600 });
    await coordinator.stop();
    // A corrupt state file is reported and treated as absent: the relay starts, with no list.
    const stateFile = join(dir, 'corrupt-state.json');
    writeFileSync(stateFile, '{"version":1,"cursorMs":');
    const relay = await startRelay('fresh-refuse', relayYaml(keys, coordinatorPort, metricsPort, [`revocationStateFile: ${stateFile}`]));
    assert.equal(await open(relay.tunnelPort, early.sessionId, early.ticket), ErrorCode.RelayRevocationsStale);
    assert.equal(logEvents(relay.proc, 'revocation_state_unreadable').length, 1, 'the corrupt file is reported');
    const stale = logEvents(relay.proc, 'revocations_stale');
    assert.equal(stale.length, 1, 'the log says the list is stale');
    assert.equal(stale[0]!.policy, 'refuse');
    assert.equal(await metric(metricsPort, 'slipstream_relay_revocations_stale'), 1);
    assert.equal(await metric(metricsPort, 'slipstream_relay_revocations_stale_refused_total'), 1);

    coordinator = await startCoordinator(keys, coordinatorPort);
    await until(() => logEvents(relay.proc, 'revocations_current').length > 0, 15_000, 'the relay to hear the feed again');
    assert.equal(await open(relay.tunnelPort, later.sessionId, later.ticket), 'accept', 'normal operation once the feed answers');
    assert.equal(await metric(metricsPort, 'slipstream_relay_revocations_stale'), 0);
    assert.ok((await metric(metricsPort, 'slipstream_relay_revocations_age_seconds')) < 60);
    await eventually(() => {
      try {
        return JSON.parse(readFileSync(stateFile, 'utf8')).version === 1 ? true : undefined;
      } catch {
        return undefined;
      }
    }, 10_000, 'the state file rewritten');
    await relay.proc.stop();
    await coordinator.stop();
  });

  test('with revocationStalePolicy admit, a fresh relay with the coordinator down admits a ticket revoked before its start, and its log and metrics say so', async () => {
    const keys = fleetKeys();
    const coordinatorPort = await freePort();
    const metricsPort = await freePort();
    const coordinator = await startCoordinator(keys, coordinatorPort);
    const backend = new CoordinatorClient({ baseUrl: `http://127.0.0.1:${coordinatorPort}`, apiKey: keys.apiKey });
    const revoked = await backend.issueSession({ origin: 'game', ttlS: 600 });
    await backend.revokeSession(revoked.sessionId);
    await coordinator.stop();
    const relay = await startRelay('fresh-admit', relayYaml(keys, coordinatorPort, metricsPort, ['revocationStalePolicy: admit']));
    const stale = logEvents(relay.proc, 'revocations_stale');
    assert.equal(stale.length, 1, 'the log says the list is stale');
    assert.equal(stale[0]!.policy, 'admit');
    assert.match(String(stale[0]!.msg), /ADMITTING new tunnel sessions/);
    assert.equal(await open(relay.tunnelPort, revoked.sessionId, revoked.ticket), 'accept', 'admitted, as configured');
    assert.equal(await metric(metricsPort, 'slipstream_relay_revocations_stale'), 1);
    assert.equal(await metric(metricsPort, 'slipstream_relay_revocations_stale_admitted_total'), 1);
    assert.equal(await metric(metricsPort, 'slipstream_relay_revocations_age_seconds'), Number.POSITIVE_INFINITY);
    await relay.proc.stop();
  });
});
