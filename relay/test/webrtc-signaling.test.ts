/**
 * The core's side of the browser entry, on virtual time: `checkSignaling` refuses what
 * a session open would refuse (draining, deny lists, forged, expired, revoked tickets,
 * an origin not served here) and spends the same verification budget, but creates no
 * state; an open from a transport endpoint (a peer connection: port ≥
 * TRANSPORT_PORT_BASE) needs no cookie even under load, spends the budget, and is
 * answered at that endpoint, so the driver sends it on the DataChannel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode } from '../../proto/src/errors.js';
import { PacketType, sessionIdToHex } from '../../proto/src/header.js';
import { issueTicket } from '../../proto/src/ticket.js';
import { buildControlPacket, buildPacket } from '../../proto/src/wire.js';
import { Rng } from '../../proto/src/rng.js';
import { parseCidr } from '../src/core/addr.js';
import { TRANSPORT_PORT_BASE } from '../src/core/constants.js';
import { baseConfig, controlOf, forgerKey, Harness, mintTicket, openLimits, openPacket, sealKey, signingKey, tunnelSpec, WALL_EPOCH_MS } from './support.js';

const BROWSER = '198.51.100.7';

test('a valid ticket passes, with one verification and no session; the open over the DataChannel is then accepted at the peer connection endpoint', () => {
  const h = new Harness();
  h.drain();
  const s = mintTicket(new Rng(1));
  const verdict = h.core.checkSignaling(h.nowMs, BROWSER, s.ticket);
  assert.deepEqual(verdict.ok && verdict.sessionId, s.hex);
  assert.equal(h.core.openGate.verifications, 1);
  assert.equal(h.core.tunnelSessionCount, 0, 'signaling creates no session');
  const endpoint = { address: BROWSER, port: TRANSPORT_PORT_BASE + 3 };
  const sent = h.deliver(h.tunnelId, endpoint, openPacket(s));
  const accept = sent.find((x) => controlOf(x.bytes)?.type === 'sessionAccept');
  assert.deepEqual(accept?.to, endpoint);
  assert.equal(h.core.tunnelSessionCount, 1);
});

test('refusals: draining, a denied source, forged, expired, revoked, an origin not served here', () => {
  const h = new Harness(baseConfig({ tunnel: tunnelSpec({ deny: [parseCidr('203.0.113.0/24')!] }) }));
  h.drain();
  const rng = new Rng(2);
  const refusal = (address: string, ticket: Uint8Array): string => {
    const v = h.core.checkSignaling(h.nowMs, address, ticket);
    return v.ok ? 'ok' : `${v.refusal}/${v.code ?? ''}`;
  };
  assert.equal(refusal('203.0.113.9', mintTicket(rng).ticket), 'denied/');
  assert.equal(refusal(BROWSER, mintTicket(rng, { key: forgerKey }).ticket), `ticket/${ErrorCode.TicketForged}`);
  assert.equal(refusal(BROWSER, mintTicket(rng, { expiresInMs: -600_000 }).ticket), `ticket/${ErrorCode.TicketExpired}`);
  assert.equal(refusal(BROWSER, mintTicket(rng, { origin: 'elsewhere' }).ticket), `ticket/${ErrorCode.TicketWrongOrigin}`);
  assert.match(refusal(BROWSER, new Uint8Array(40)), /^ticket\/SLIP_ERR_/, 'junk bytes are a refused ticket, not a crash');
  const revoked = mintTicket(rng);
  h.core.revoke(h.nowMs, [revoked.hex]);
  assert.equal(refusal(BROWSER, revoked.ticket), `ticket/${ErrorCode.TicketRevoked}`);
  h.core.drain();
  assert.equal(refusal(BROWSER, mintTicket(rng).ticket), `draining/${ErrorCode.RelayDraining}`);
  assert.equal(h.core.tunnelSessionCount, 0);
});

test('the verification budget per source bounds signaling: over it, rateLimited without a verification', () => {
  const perSource = 10;
  const h = new Harness(baseConfig({ limits: { ...openLimits, ticketVerificationsPerSecond: 1000, ticketVerificationsPerSourcePerSecond: perSource } }));
  h.drain();
  const rng = new Rng(3);
  const verdicts = Array.from({ length: 50 }, () => h.core.checkSignaling(h.nowMs, BROWSER, mintTicket(rng, { key: forgerKey }).ticket));
  const limited = verdicts.filter((v) => !v.ok && v.refusal === 'rateLimited').length;
  // The per-source limiter holds one second at its rate.
  assert.equal(h.core.openGate.verifications, perSource);
  assert.equal(limited, 50 - perSource);
  // Another source still has its own budget.
  assert.equal(h.core.checkSignaling(h.nowMs, '198.51.100.8', mintTicket(rng).ticket).ok, true);
});

test('under load an open from a peer connection endpoint needs no cookie; a UDP open is asked for one', () => {
  const h = new Harness(baseConfig({ limits: { ...openLimits, ticketVerificationsPerSecond: 10, ticketVerificationsPerSourcePerSecond: 0 } }));
  h.drain();
  const rng = new Rng(4);
  // Spend the global budget with forged opens from many UDP sources: the relay goes under load.
  for (let i = 0; i < 40; i++) h.deliver(h.tunnelId, { address: `10.9.0.${i + 1}`, port: 5000 }, openPacket(mintTicket(rng, { key: forgerKey })));
  h.nowMs += 200;
  const udp = mintTicket(rng);
  assert.equal(controlOf(h.deliver(h.tunnelId, { address: '10.8.0.1', port: 5000 }, openPacket(udp)).find((x) => controlOf(x.bytes) !== undefined)!.bytes)?.type, 'sessionRetry');
  const browser = mintTicket(rng);
  const sent = h.deliver(h.tunnelId, { address: BROWSER, port: TRANSPORT_PORT_BASE }, openPacket(browser));
  assert.ok(sent.some((x) => controlOf(x.bytes)?.type === 'sessionAccept'), 'accepted without a cookie round trip');
});

test('exit relays: a browser session whose ticket names an exit is forwarded there, and the exit’s packets reach the peer connection endpoint', () => {
  const exit = { address: '10.0.0.7', port: 4433 };
  const h = new Harness(baseConfig({ rules: [], groups: [], tunnel: tunnelSpec({ relayId: 'entry-a', fec: { modes: ['dup', 'off'], k: 4, r: 2, holdMs: 8, copies: 1, spacingMs: 2 } }) }));
  h.drain();
  const rng = new Rng(5);
  const high = rng.nextUint32();
  const low = rng.nextUint32();
  const hex = sessionIdToHex(high, low);
  const ticket = issueTicket({ sessionId: hex, origin: 'game', issuedAtMs: WALL_EPOCH_MS, expiresAtMs: WALL_EPOCH_MS + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: rng.fillBytes(new Uint8Array(32)), sealNonce: rng.fillBytes(new Uint8Array(12)), exit: { relayId: 'exit-1', address: `${exit.address}:${exit.port}` } }, signingKey, sealKey);
  assert.equal(h.core.checkSignaling(h.nowMs, BROWSER, ticket).ok, true);
  const browser = { address: BROWSER, port: TRANSPORT_PORT_BASE + 9 };
  const open = buildControlPacket(high, low, { type: 'sessionOpen', ticket, fecModes: ['dup', 'off'] });
  assert.deepEqual(h.deliver(h.tunnelId, browser, open).map((x) => x.to), [exit], 'the open goes to the exit');
  const accept = buildControlPacket(high, low, { type: 'sessionAccept', sessionId: hex, fecMode: 'dup', exit: 'exit-1' });
  assert.deepEqual(h.deliver(h.tunnelId, exit, accept).map((x) => x.to), [browser]);
  const down = buildPacket(PacketType.Data, high, low, 1, Uint8Array.of(1, 2, 3));
  assert.deepEqual(h.deliver(h.tunnelId, exit, down).map((x) => [x.to, x.bytes]), [[browser, down]]);
  const up = buildPacket(PacketType.Data, high, low, 2, Uint8Array.of(4));
  assert.deepEqual(h.deliver(h.tunnelId, browser, up).map((x) => [x.to, x.bytes]), [[exit, up]]);
});
