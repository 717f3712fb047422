/**
 * The stateless retry for ticket opens (tunnel/cookie.ts), on virtual time: within the
 * verification budget an open is verified at once; over it, an open without a valid
 * cookie is answered with a `sessionRetry` (no signature check, never larger than the
 * open) and an open echoing the cookie from the same address and port is verified.
 * Verifications stay within the budget whatever arrives; spoofed sources (which never
 * see their cookie) never get a verification; live sessions are untouched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode } from '../../proto/src/errors.js';
import { PacketType } from '../../proto/src/header.js';
import { sessionIdToHex } from '../../proto/src/header.js';
import { Rng } from '../../proto/src/rng.js';
import { issueTicket } from '../../proto/src/ticket.js';
import { parseCidr } from '../src/core/addr.js';
import { buildControlPacket, buildPacket } from '../../proto/src/wire.js';
import { COOKIE_KEY_ROTATE_MS, COOKIE_LOAD_HOLD_MS, TICKET_VERIFICATIONS_BURST_MS } from '../src/core/constants.js';
import { baseConfig, controlOf, forgerKey, Harness, mintTicket, openLimits, openPacket, sealKey, signingKey, tunnelSpec, WALL_EPOCH_MS, type ClientSession, type Sent } from './support.js';

const BUDGET = 100;
const PER_SOURCE = 10;
const limits = { ...openLimits, ticketVerificationsPerSecond: BUDGET, ticketVerificationsPerSourcePerSecond: PER_SOURCE };

function cookieOpen(s: ClientSession, cookie: Uint8Array): Uint8Array {
  return buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'], cookie });
}

/** The cookie of a `sessionRetry` among `sent`, or undefined. */
function retryCookie(sent: Sent[]): Uint8Array | undefined {
  for (const x of sent) {
    const m = controlOf(x.bytes);
    if (m?.type === 'sessionRetry') return m.cookie;
  }
  return undefined;
}

function accepted(sent: Sent[]): boolean {
  return sent.some((x) => controlOf(x.bytes)?.type === 'sessionAccept');
}

/** Ticket signature checks that failed, read from the refusal events (each is one Ed25519 verification). */
function forgedRefusals(h: Harness): number {
  return h.eventsOf('sessionRefused').filter((e) => e.reason === ErrorCode.TicketForged).length;
}

/** `count` forged opens over `durationMs` from distinct (spoofed) sources, starting now; returns what the relay sent. */
function forgedFlood(h: Harness, forged: Uint8Array, count: number, durationMs: number, firstSource: number): Sent[] {
  const start = h.nowMs;
  const sent: Sent[] = [];
  for (let i = 0; i < count; i++) {
    h.nowMs = start + (i * durationMs) / count;
    const n = firstSource + i;
    sent.push(...h.deliver(h.tunnelId, { address: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, port: 1024 + (n % 60_000) }, forged));
  }
  h.nowMs = start + durationMs;
  return sent;
}

test('within the budget an open is verified at once: no cookie, no extra round trip', () => {
  const h = new Harness(baseConfig({ limits }));
  const rng = new Rng(21);
  for (let i = 0; i < 20; i++) {
    h.nowMs += 100;
    const answer = h.deliver(h.tunnelId, { address: `198.51.100.${i + 1}`, port: 5000 }, openPacket(mintTicket(rng)));
    assert.ok(accepted(answer), `open ${i} accepted`);
  }
  assert.equal(h.core.openGate.cookieReplies, 0);
  assert.equal(h.core.openGate.verifications, 20);
});

test('10,000 forged opens/s from spoofed sources: verifications stay within the budget, every other open gets a cookie no larger than it, and a new client behind the cookie opens', () => {
  const h = new Harness(baseConfig({ limits }));
  const rng = new Rng(22);
  const forged = openPacket(mintTicket(rng, { key: forgerKey }));
  // A live session from before the flood.
  const live = mintTicket(rng);
  const liveClient = { address: '198.51.100.10', port: 6000 };
  assert.ok(accepted(h.deliver(h.tunnelId, liveClient, openPacket(live))));
  h.drain();

  const sent = forgedFlood(h, forged, 20_000, 2_000, 1);
  // The burst plus the rate over the flood's 2 s, and the live session's one.
  const bound = BUDGET * (TICKET_VERIFICATIONS_BURST_MS / 1000 + 2) + 1;
  assert.ok(h.core.openGate.verifications <= bound, `${h.core.openGate.verifications} verifications > ${bound}`);
  assert.ok(forgedRefusals(h) <= bound, `${forgedRefusals(h)} signature checks of forged tickets > ${bound}`);
  assert.ok(h.core.openGate.cookieReplies >= 20_000 - bound);
  assert.ok(sent.every((x) => x.bytes.length <= forged.length), 'no reply larger than the open');
  assert.ok(sent.filter((x) => controlOf(x.bytes)?.type === 'sessionRetry').length >= 20_000 - bound);
  // An open too short to hold a real ticket is smaller than a cookie reply (68 bytes): it gets nothing.
  const tiny = buildControlPacket(5, 6, { type: 'sessionOpen', ticket: new Uint8Array(0), fecModes: [] });
  assert.ok(h.deliver(h.tunnelId, { address: '198.51.100.2', port: 2 }, tiny).every((x) => x.bytes.length <= tiny.length));
  assert.ok(h.core.unauthenticatedBytesOut <= h.core.unauthenticatedBytesIn);
  assert.equal(h.core.sourceCount, 1, 'spoofed sources made no per-source state');

  // The live session is untouched: its data and its keepalive open are served without a verification.
  const verificationsBefore = h.core.openGate.verifications;
  h.deliver(h.tunnelId, liveClient, buildPacket(PacketType.Data, live.high, live.low, 1, new Uint8Array(40)));
  assert.ok(h.sent.some((x) => x.to.address === '10.0.0.9' && x.to.port === 7777), 'live data reaches the origin');
  assert.ok(accepted(h.deliver(h.tunnelId, liveClient, openPacket(live))), 'keepalive open answered');
  assert.equal(h.core.openGate.verifications, verificationsBefore);

  // Still under the flood, a new client: a cookie first, then its echo opens the session.
  const fresh = mintTicket(rng);
  const freshClient = { address: '203.0.113.5', port: 7000 };
  forgedFlood(h, forged, 500, 50, 100_000);
  const first = h.deliver(h.tunnelId, freshClient, openPacket(fresh));
  const cookie = retryCookie(first);
  assert.ok(cookie !== undefined, 'asked for a cookie');
  assert.equal(first.length, 1);
  assert.ok(first[0]!.bytes.length <= openPacket(fresh).length);
  forgedFlood(h, forged, 500, 50, 200_000);
  const second = h.deliver(h.tunnelId, freshClient, cookieOpen(fresh, cookie));
  assert.ok(accepted(second), 'the echoed cookie opens the session under the flood');
  assert.equal(h.core.tunnelSessionCount, 2);
});

test('a cookie is bound to the address and port it was sent to, and to time (good for 2–4 min)', () => {
  const h = new Harness(baseConfig({ limits: { ...limits, ticketVerificationsPerSecond: 1 } }));
  const rng = new Rng(23);
  const client = { address: '203.0.113.9', port: 7100 };
  // Spend the budget so that opens must carry a cookie.
  h.deliver(h.tunnelId, { address: '198.51.100.1', port: 1 }, openPacket(mintTicket(rng)));
  const s = mintTicket(rng);
  const cookie = retryCookie(h.deliver(h.tunnelId, client, openPacket(s)));
  assert.ok(cookie !== undefined);
  // From another port, or another address: not valid (a new cookie is asked for instead).
  for (const from of [{ address: client.address, port: client.port + 1 }, { address: '203.0.113.10', port: client.port }]) {
    const answer = h.deliver(h.tunnelId, from, cookieOpen(s, cookie));
    assert.ok(retryCookie(answer) !== undefined && !accepted(answer), `${from.address}:${from.port}`);
  }
  const forgedCookie = cookie.slice();
  forgedCookie[0] = forgedCookie[0]! ^ 1;
  assert.ok(!accepted(h.deliver(h.tunnelId, client, cookieOpen(s, forgedCookie))));
  assert.equal(h.core.openGate.cookiesInvalid, 3);
  // Two key periods later it has expired (the relay is still under load: keep the demand up).
  h.nowMs += 2 * COOKIE_KEY_ROTATE_MS + 1;
  h.deliver(h.tunnelId, { address: '198.51.100.2', port: 1 }, openPacket(mintTicket(rng)));
  h.deliver(h.tunnelId, { address: '198.51.100.3', port: 1 }, openPacket(mintTicket(rng)));
  const stale = h.deliver(h.tunnelId, client, cookieOpen(s, cookie));
  assert.ok(!accepted(stale) && retryCookie(stale) !== undefined, 'a stale cookie is not accepted');
  // A fresh one, one rotation later, is still good.
  const fresh = retryCookie(stale)!;
  h.nowMs += COOKIE_KEY_ROTATE_MS;
  assert.ok(accepted(h.deliver(h.tunnelId, client, cookieOpen(s, fresh))), 'a cookie from the previous key period is accepted');
});

test('one source over its own budget must prove its address, and even with a cookie gets no more than its budget', () => {
  const h = new Harness(baseConfig({ limits }));
  const forged = openPacket(mintTicket(new Rng(24), { key: forgerKey }));
  const attacker = { address: '198.51.100.66', port: 9999 };
  // 50 opens/s for 2 s: within the relay's budget (100/s), five times the source's (10/s).
  let cookie: Uint8Array | undefined;
  for (let i = 0; i < 50; i++) {
    h.nowMs += 20;
    cookie ??= retryCookie(h.deliver(h.tunnelId, attacker, forged));
  }
  assert.ok(cookie !== undefined, 'asked for a cookie');
  const withCookie = buildControlPacket(1, 2, { type: 'sessionOpen', ticket: controlOfOpen(forged), fecModes: ['off'], cookie });
  for (let i = 0; i < 50; i++) {
    h.nowMs += 20;
    h.deliver(h.tunnelId, attacker, withCookie);
  }
  // The source's bucket depth (one second at its rate) plus its rate over the 2 s.
  const bound = PER_SOURCE * (1 + 2);
  assert.ok(h.core.openGate.verifications <= bound, `${h.core.openGate.verifications} > ${bound}`);
  assert.equal(forgedRefusals(h), h.core.openGate.verifications);
  assert.ok(h.core.openGate.budgetDrops >= 50 - bound);
  // Other sources are not affected: the relay as a whole is within its budget.
  assert.ok(accepted(h.deliver(h.tunnelId, { address: '198.51.100.67', port: 1 }, openPacket(mintTicket(new Rng(25))))));
});

test('when the flood stops, opens are verified at once again after the hold', () => {
  const h = new Harness(baseConfig({ limits }));
  const rng = new Rng(26);
  forgedFlood(h, openPacket(mintTicket(rng, { key: forgerKey })), 2_000, 1_000, 1);
  assert.ok(retryCookie(h.deliver(h.tunnelId, { address: '203.0.113.1', port: 1 }, openPacket(mintTicket(rng)))) !== undefined, 'under load');
  h.advance(h.nowMs + COOKIE_LOAD_HOLD_MS + 1_000);
  assert.ok(accepted(h.deliver(h.tunnelId, { address: '203.0.113.2', port: 1 }, openPacket(mintTicket(rng)))), 'normal again');
});

test('an entry relay whose exit asks for a cookie sends the forwarded open again with it (once per keepalive period), and the exit opens the session', () => {
  const ENTRY = { address: '10.0.0.1', port: 4433 };
  const EXIT = { address: '10.0.0.7', port: 4433 };
  const rng = new Rng(28);
  const high = rng.nextUint32();
  const low = rng.nextUint32();
  const exitTicket = issueTicket(
    { sessionId: sessionIdToHex(high, low), origin: 'game', issuedAtMs: WALL_EPOCH_MS, expiresAtMs: WALL_EPOCH_MS + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: rng.fillBytes(new Uint8Array(32)), sealNonce: rng.fillBytes(new Uint8Array(12)), exit: { relayId: 'exit-1', address: `${EXIT.address}:${EXIT.port}` } },
    signingKey,
    sealKey,
  );
  const entry = new Harness(baseConfig({ rules: [], groups: [], tunnel: tunnelSpec({ relayId: 'entry-a' }) }));
  const exit = new Harness(baseConfig({ rules: [], groups: [], limits: { ...limits, ticketVerificationsPerSecond: 1 }, upstreamBindAddress: EXIT.address, tunnel: tunnelSpec({ listenAddress: EXIT.address, relayId: 'exit-1', peerCidrs: [parseCidr('10.0.0.0/24')!] }) }));
  // The exit is over its budget (a peer is exempt from the per-source budget, not from the global one).
  exit.deliver(exit.tunnelId, { address: '198.51.100.1', port: 1 }, openPacket(mintTicket(rng)));
  exit.deliver(exit.tunnelId, { address: '198.51.100.2', port: 1 }, openPacket(mintTicket(rng)));

  const forwarded = entry.deliver(entry.tunnelId, { address: '198.51.100.9', port: 1000 }, buildControlPacket(high, low, { type: 'sessionOpen', ticket: exitTicket, fecModes: ['off'] }));
  assert.deepEqual(forwarded.map((x) => x.to), [EXIT]);
  const asked = exit.deliver(exit.tunnelId, ENTRY, forwarded[0]!.bytes);
  const cookie = retryCookie(asked);
  assert.ok(cookie !== undefined, 'the exit asks the entry for a cookie');
  const again = entry.deliver(entry.tunnelId, EXIT, asked[0]!.bytes);
  assert.deepEqual(again.map((x) => x.to), [EXIT]);
  const reopened = controlOf(again[0]!.bytes);
  assert.ok(reopened?.type === 'sessionOpen');
  assert.deepEqual(reopened.cookie, cookie);
  assert.equal(entry.deliver(entry.tunnelId, EXIT, asked[0]!.bytes).length, 0, 'a second retry within the keepalive period is not answered');
  // Once the budget has a token again (1/s here), the proven open is verified.
  exit.nowMs += 1_000;
  assert.ok(accepted(exit.deliver(exit.tunnelId, ENTRY, again[0]!.bytes)), 'the exit accepts the open with the cookie');
});

function controlOfOpen(packet: Uint8Array): Uint8Array {
  const m = controlOf(packet);
  assert.ok(m?.type === 'sessionOpen');
  return m.ticket;
}
