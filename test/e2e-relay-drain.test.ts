/**
 * End-to-end: the real `slipstream relay` process at the edges of its life. A SIGTERM
 * drain that reaches its deadline tells each live tunnel client with an authenticated
 * Close (so the SDK fails over at once instead of waiting out a silence). A relay
 * started with `limits.sessionsMax` above its open-file limit (`ulimit -n` in a shell)
 * says so at start and keeps serving `/metrics` with a log that does not grow per
 * refused flow.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeControl } from '../proto/src/control.js';
import { ErrorCode } from '../proto/src/errors.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader, sessionIdToHex } from '../proto/src/header.js';
import { issueTicket, rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';
import { buildControlPacket, buildPacket, openRelayClose } from '../proto/src/wire.js';
import { signalIfRunning } from '../kit/child-signal.js';
import { JsonLogProcess } from './support/json-lines.js';
import { CLI_PATH } from './support/run-cli.js';
import { until } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-relay-drain-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const children = new Set<JsonLogProcess>();
after(() => {
  for (const p of children) signalIfRunning(p.child, 'SIGKILL');
});

/** Starts `slipstream relay` on `yaml`; resolves once it logged `relay started` (or exited). */
async function startRelay(yaml: string, name: string, openFilesMax?: number): Promise<{ relay: JsonLogProcess; started: Record<string, unknown> }> {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, yaml);
  const args = [CLI_PATH, 'relay', '--config', path];
  // `ulimit -n` lowers the limit for the relay only (exec: the shell becomes the relay, same pid).
  const child = openFilesMax === undefined ? spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn('sh', ['-c', `ulimit -n ${openFilesMax} && exec "$0" "$@"`, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const relay = new JsonLogProcess(child);
  children.add(relay);
  const started = await relay.waitLog((l) => l.msg === 'relay started', 15_000, 'relay started');
  return { relay, started };
}

describe('relay drain', () => {
  test('a drain that reaches its deadline sends each live tunnel session an authenticated Close (SLIP_ERR_RELAY_DRAINING)', async () => {
    const seed = randomBytes(32);
    const signingKey = ticketSigningKeyFromSeed(seed);
    const sealKey = randomBytes(32);
    const origin = dgram.createSocket('udp4');
    origin.on('message', (m, from) => origin.send(m, from.port, from.address));
    await new Promise<void>((resolve) => origin.bind(0, '127.0.0.1', resolve));
    const { relay, started } = await startRelay(
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: "off" }',
        'drain: { timeoutMs: 300 }',
        'tunnel:',
        '  listen: 127.0.0.1:0',
        `  ticketPublicKey: ${Buffer.from(rawPublicKey(signingKey)).toString('base64')}`,
        `  sealKey: ${sealKey.toString('base64')}`,
        `  origins: { game: 127.0.0.1:${origin.address().port} }`,
      ].join('\n'),
      'drain-close',
    );
    const tunnelPort = (started.addresses as { tunnel: { port: number } }).tunnel.port;
    const client = dgram.createSocket('udp4');
    const replies: Buffer[] = [];
    client.on('message', (m) => replies.push(m));
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.13', resolve));
    try {
      const high = 0x7e000001;
      const low = 42;
      const key = randomBytes(32);
      const ticket = issueTicket(
        { sessionId: sessionIdToHex(high, low), origin: 'game', issuedAtMs: Date.now(), expiresAtMs: Date.now() + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: key, sealNonce: randomBytes(12) },
        signingKey,
        sealKey,
      );
      client.send(buildControlPacket(high, low, { type: 'sessionOpen', ticket, fecModes: ['off'] }), tunnelPort, '127.0.0.1');
      await until(() => replies.length > 0, 5000, 'an answer to sessionOpen');
      const accept = decodeControl(replies[0]!.subarray(HEADER_BYTES));
      assert.ok(accept.ok && accept.message.type === 'sessionAccept', 'the session is open');
      const header = new PacketHeader();
      const isType = (m: Buffer, type: number): boolean => parseHeader(m, header) === 0 && header.type === type;
      client.send(buildPacket(PacketType.Data, high, low, 1, Buffer.from('live'.padEnd(40, '.'))), tunnelPort, '127.0.0.1');
      await until(() => replies.some((m) => isType(m, PacketType.Data)), 5000, 'a tunnel echo');
      // SIGTERM: the session stays live past the deadline, so the relay must end it.
      relay.child.kill('SIGTERM');
      await until(() => replies.some((m) => isType(m, PacketType.Close)), 10_000, 'a Close from the draining relay');
      const close = replies.find((m) => isType(m, PacketType.Close))!;
      const body = openRelayClose(key, high, low, close.subarray(HEADER_BYTES));
      assert.ok(body !== undefined, 'the Close is authenticated with the session key');
      const reason = decodeControl(body);
      assert.ok(reason.ok && reason.message.type === 'sessionReject');
      assert.equal(reason.message.reason, ErrorCode.RelayDraining);
      assert.deepEqual(await relay.exited, { code: 0, signal: null });
      const end = relay.lines.find((l) => l.event === 'session_end' && l.kind === 'tunnel');
      assert.equal(end?.reason, 'drain deadline');
    } finally {
      signalIfRunning(relay.child, 'SIGKILL');
      client.close();
      origin.close();
    }
  });

  test('sessionsMax above the open-file limit: a warning at start; flows beyond it are refused (or shed while unanswered) without a log line each and /metrics keeps answering', async () => {
    const origin = dgram.createSocket('udp4');
    origin.on('message', (m, from) => origin.send(m, from.port, from.address));
    await new Promise<void>((resolve) => origin.bind(0, '127.0.0.1', resolve));
    const { relay, started } = await startRelay(
      ['upstreamBindAddress: 127.0.0.1', 'metrics: { listen: 127.0.0.1:0 }', 'limits: { sessionsMax: 100000, newSessionsPerSourcePerSecond: 0 }', 'rules:', `  - { name: game, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${origin.address().port}] }`].join('\n'),
      'fd-limit',
      256,
    );
    const clients: dgram.Socket[] = [];
    try {
      const warning = relay.lines.find((l) => l.event === 'fd_limit');
      assert.ok(warning !== undefined, 'a warning at start');
      assert.equal(warning.level, 40, 'at level warn');
      assert.equal(warning.openFilesSoft, 256);
      assert.match(String(warning.msg), /limits\.sessionsMax 100000 needs up to \d+ open files but the soft limit is 256/);
      const addresses = started.addresses as { rules: Record<string, { port: number }[]>; metrics: { port: number } };
      const port = addresses.rules.game![0]!.port;
      // 400 flows (more than the 256 descriptors), each from its own socket, 40 per source address.
      let replies = 0;
      for (let i = 0; i < 400; i++) {
        const socket = dgram.createSocket('udp4');
        socket.on('message', () => replies++);
        await new Promise<void>((resolve) => socket.bind(0, `127.0.0.${70 + (i % 10)}`, resolve));
        clients.push(socket);
        socket.send('hello', port, '127.0.0.1');
      }
      // Bounded wait for the relay to have answered what it admitted (the cap: 256 less the reserve).
      await until(() => replies >= 100, 10_000, 'replies to the admitted flows');
      // Bounded: a relay out of descriptors does not accept the request at all.
      const metricsText = async (): Promise<string> => {
        const response = await fetch(`http://127.0.0.1:${addresses.metrics.port}/metrics`, { signal: AbortSignal.timeout(10_000) });
        assert.equal(response.status, 200, '/metrics answers');
        return response.text();
      };
      // Every one of the 400 first datagrams was admitted (a reply), refused at the cap, or
      // admitted by ending an older flow its origin had not answered yet (shed: unanswered
      // flows go first when a budget is full).
      for (let waited = 0; ; waited += 50) {
        const text = await metricsText();
        // Refused: at the cap, or by any other limit (each drop is counted under its reason).
        let refused = 0;
        for (const m of text.matchAll(/^slipstream_relay_drops_total\{reason="[a-z_]+"\} (\d+)$/gm)) refused += Number(m[1]);
        const shed = Number(/slipstream_relay_udp_flows_shed_total (\d+)/.exec(text)?.[1] ?? 0);
        if (refused + shed + replies >= 400) break;
        assert.ok(waited < 10_000, `the relay did not settle: ${replies} replies, ${refused} refused, ${shed} shed of 400`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const health = (await (await fetch(`http://127.0.0.1:${addresses.metrics.port}/health`, { signal: AbortSignal.timeout(10_000) })).json()) as { sessions: number };
      assert.ok(health.sessions <= 256 - 128, `sessions held within the descriptors (${health.sessions})`);
      const errorLines = relay.lines.filter((l) => JSON.stringify(l).includes('EMFILE'));
      process.stdout.write(`# ulimit -n 256, 400 new flows: ${health.sessions} sessions held, ${errorLines.length} log lines name EMFILE, ${relay.lines.length} log lines in all\n`);
      assert.ok(errorLines.length <= 2, `no log line per refused flow (${errorLines.length} lines name EMFILE)`);
    } finally {
      signalIfRunning(relay.child, 'SIGKILL');
      for (const c of clients) c.close();
      origin.close();
    }
  });
});
