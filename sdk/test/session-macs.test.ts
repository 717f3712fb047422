/**
 * A TunnelClient's session MACs through an asynchronous HMAC (WebCrypto, as in a
 * browser): the work is queued as MAC jobs and nothing that needs a MAC happens before
 * the driver hands the result back; then the path response, the client Close and the
 * relay Close check are the same bytes and decisions as with Node's synchronous HMAC
 * (checked by the relay's own `node:crypto` verifiers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeControl, encodeControl } from '../../proto/src/control.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { HEADER_BYTES, PacketHeader, PacketType, parseHeader } from '../../proto/src/header.js';
import { closeMacInput, pathMacInput, relayCloseMacInput, type HmacSha256 } from '../../proto/src/session-mac.js';
import { buildControlPacket, buildPacket, closeMac, nodeHmacSha256, pathResponseMac, relayCloseMac, verifyCloseMac, verifyPathResponseMac } from '../../proto/src/wire.js';
import { webCryptoHmacSha256 } from '../src/browser/webcrypto-hmac.js';
import { TunnelClient, type ClientTransmit, type TunnelClientEvent } from '../src/core/tunnel-client.js';

const HIGH = 0x01234567;
const LOW = 0x89abcdef;
const KEY = new Uint8Array(32).map((_, i) => i * 7 + 1);
const A = { address: '10.0.0.1', port: 4433 };

/** A client on `hmac` opened against one scripted relay; MAC jobs are left queued. */
function openClient(hmac: HmacSha256): { c: TunnelClient; events: TunnelClientEvent[]; drain: () => ClientTransmit[] } {
  const c = new TunnelClient({ sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: KEY, hmac, fecModes: ['off'], warmBackup: false });
  const events: TunnelClientEvent[] = [];
  const h = new PacketHeader();
  let now = 0;
  const drain = (): ClientTransmit[] => {
    const out: ClientTransmit[] = [];
    for (let i = 0; i < 1000; i++) {
      for (let e = c.pollEvent(); e; e = c.pollEvent()) events.push(e);
      const t = c.pollTransmit();
      if (t === undefined) break;
      parseHeader(t.bytes, h);
      if (h.type === PacketType.Probe) {
        const r = new Uint8Array(t.bytes);
        r[2] = PacketType.ProbeReply;
        c.handleDatagram(now, A, r);
      } else if (h.type === PacketType.Control && decodeControl(t.bytes.subarray(HEADER_BYTES)).ok) {
        const m = decodeControl(t.bytes.subarray(HEADER_BYTES));
        if (m.ok && m.message.type === 'sessionOpen') c.handleDatagram(now, A, buildControlPacket(HIGH, LOW, { type: 'sessionAccept', sessionId: '0123456789abcdef', fecMode: 'off' }));
      } else out.push(t);
    }
    return out;
  };
  c.setCandidates(0, [{ id: 'A', tunnel: A, probe: A }]);
  drain();
  for (now = 5; now <= 3000 && !c.isOpen; now += 5) {
    c.handleTimeout(now);
    drain();
  }
  assert.ok(c.isOpen, 'the scripted relay opened the session');
  return { c, events, drain };
}

function typeOf(bytes: Uint8Array): number {
  const h = new PacketHeader();
  assert.equal(parseHeader(bytes, h), 0);
  return h.type;
}

function authenticRelayClose(reason: string): Uint8Array {
  const body = encodeControl({ type: 'sessionReject', reason, message: 'x' });
  const full = new Uint8Array(body.length + 16);
  full.set(body);
  full.set(relayCloseMac(KEY, HIGH, LOW, body), body.length);
  return buildPacket(PacketType.Close, HIGH, LOW, 0, full);
}

test('the MAC inputs hashed with any HMAC-SHA256 give the MACs the relay checks (node:crypto and WebCrypto agree)', async () => {
  const nonce = new Uint8Array(16).fill(9);
  const reason = Uint8Array.of(1, 2, 3);
  const web = webCryptoHmacSha256();
  assert.equal(web.mode, 'async');
  assert.equal(nodeHmacSha256.mode, 'sync');
  if (nodeHmacSha256.mode !== 'sync' || web.mode !== 'async') return;
  assert.deepEqual(nodeHmacSha256.sign(KEY, pathMacInput(HIGH, LOW, nonce)), pathResponseMac(KEY, HIGH, LOW, nonce));
  assert.deepEqual(await web.sign(KEY, pathMacInput(HIGH, LOW, nonce)), pathResponseMac(KEY, HIGH, LOW, nonce));
  assert.deepEqual((await web.sign(KEY, closeMacInput(HIGH, LOW))).subarray(0, 16), closeMac(KEY, HIGH, LOW));
  assert.deepEqual((await web.sign(KEY, relayCloseMacInput(HIGH, LOW, reason))).subarray(0, 16), relayCloseMac(KEY, HIGH, LOW, reason));
});

test('a synchronous HMAC queues no MAC jobs: a path challenge is answered during the input that brought it', () => {
  const { c, drain } = openClient(nodeHmacSha256);
  assert.equal(c.pollMacJob(), undefined);
  const nonce = new Uint8Array(16).fill(3);
  c.handleDatagram(10_000, A, buildPacket(PacketType.PathChallenge, HIGH, LOW, 0, nonce));
  assert.equal(c.pollMacJob(), undefined);
  const responses = drain().filter((t) => typeOf(t.bytes) === PacketType.PathResponse);
  assert.equal(responses.length, 1);
  assert.ok(verifyPathResponseMac(KEY, HIGH, LOW, nonce, responses[0]!.bytes.subarray(HEADER_BYTES + 16)));
});

test('with an asynchronous HMAC a path challenge is answered only once its MAC comes back, and the relay accepts the answer', async () => {
  const web = webCryptoHmacSha256();
  const { c, drain } = openClient(web);
  const closeJob = c.pollMacJob();
  assert.ok(closeJob, 'the Close MAC is the first job');
  const nonce = new Uint8Array(16).fill(5);
  c.handleDatagram(10_000, A, buildPacket(PacketType.PathChallenge, HIGH, LOW, 0, nonce));
  assert.deepEqual(drain().filter((t) => typeOf(t.bytes) === PacketType.PathResponse), [], 'no answer before the MAC');
  const job = c.pollMacJob();
  assert.ok(job);
  assert.equal(c.pollMacJob(), undefined);
  c.handleMacResult(10_001, job.id, await web.sign(job.key, job.data));
  const responses = drain().filter((t) => typeOf(t.bytes) === PacketType.PathResponse);
  assert.equal(responses.length, 1);
  assert.deepEqual(responses[0]!.to, A);
  const body = responses[0]!.bytes.subarray(HEADER_BYTES);
  assert.deepEqual(body.subarray(0, 16), nonce);
  assert.ok(verifyPathResponseMac(KEY, HIGH, LOW, nonce, body.subarray(16)));
  // A result for an unknown job changes nothing.
  c.handleMacResult(10_002, 999, new Uint8Array(32));
  assert.deepEqual(drain(), []);
});

test('with an asynchronous HMAC a Close asked for before its MAC is known goes out when it comes, and the relay accepts it', async () => {
  const web = webCryptoHmacSha256();
  const { c, drain } = openClient(web);
  const job = c.pollMacJob();
  assert.ok(job);
  c.close(10_000);
  assert.deepEqual(drain(), [], 'the Close waits for its MAC');
  c.handleMacResult(10_001, job.id, await web.sign(job.key, job.data));
  const out = drain();
  assert.equal(out.length, 1);
  assert.equal(typeOf(out[0]!.bytes), PacketType.Close);
  assert.ok(verifyCloseMac(KEY, HIGH, LOW, out[0]!.bytes.subarray(HEADER_BYTES)));
});

test('with an asynchronous HMAC a relay Close is acted on once its MAC is checked: an authentic revocation fails the connection, a forged one does not', async () => {
  const web = webCryptoHmacSha256();
  for (const forged of [false, true]) {
    const { c, events, drain } = openClient(web);
    c.pollMacJob();
    const packet = authenticRelayClose(ErrorCode.TicketRevoked);
    if (forged) packet[packet.length - 1]! ^= 0xff;
    c.handleDatagram(10_000, A, packet);
    drain();
    assert.equal(events.some((e) => e.type === 'failed'), false, 'nothing happens before the check');
    const job = c.pollMacJob();
    assert.ok(job);
    c.handleMacResult(10_001, job.id, await web.sign(job.key, job.data));
    drain();
    const failed = events.find((e) => e.type === 'failed');
    if (forged) assert.equal(failed, undefined, 'a forged Close is ignored');
    else assert.equal(failed?.type === 'failed' ? failed.code : undefined, ErrorCode.TicketRevoked);
  }
});
