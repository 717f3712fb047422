/**
 * The SDK behind a relay's stateless retry, in the simulator: while forged session
 * opens from 40 addresses (2,000 a second) keep the relay over its ticket-verification
 * budget, the real SDK's open is answered with a cookie (`sessionRetry`), the SDK
 * echoes it, its session opens and its traffic flows; the relay's verifications stay
 * within the budget. Fixed seed; the failure names it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../proto/src/rng.js';
import { issueTicket, ticketSigningKeyFromSeed } from '../../proto/src/ticket.js';
import { buildControlPacket } from '../../proto/src/wire.js';
import { defaultRelayLimits } from '../src/deployment/fleet.js';
import { SdkScenario } from '../src/deployment/scenario.js';

const BUDGET = 20;

test('an SDK opens through a cookie retry while forged opens keep the relay over its verification budget (seed 5)', () => {
  const seed = 5;
  const s = new SdkScenario({ seed, relays: [{ id: 'only', clientDelayMs: 10, originDelayMs: 10, limits: { ...defaultRelayLimits(), ticketVerificationsPerSecond: BUDGET } }] });
  const relay = s.relays.get('only')!;
  const rng = new Rng(99);
  const forgedTicket = issueTicket(
    { sessionId: '0123456789abcdef', origin: 'game', issuedAtMs: 1.7e12, expiresAtMs: 1.7e12 + 600_000, limits: { packetsPerSecond: 0, bytesPerSecond: 0 }, sessionKey: rng.fillBytes(new Uint8Array(32)), sealNonce: rng.fillBytes(new Uint8Array(12)) },
    ticketSigningKeyFromSeed(rng.fillBytes(new Uint8Array(32))),
    rng.fillBytes(new Uint8Array(32)),
  );
  const forged = buildControlPacket(0x01234567, 0x89abcdef, { type: 'sessionOpen', ticket: forgedTicket, fecModes: ['off'] });
  const floodStartMs = 500;
  const floodEndMs = 12_000;
  const senders = Array.from({ length: 40 }, (_, i) => s.network.addHost(`10.7.0.${i + 1}`).bind());
  const target = { address: relay.host.address, port: relay.config.tunnel!.listenPort };
  for (let t = floodStartMs; t < floodEndMs; t += 20) s.network.schedule(t, () => senders.forEach((socket) => socket.send(forged, target)));

  s.startTraffic(60);
  s.runUntil(floodEndMs);
  const gate = relay.relay.core.openGate;
  const opened = s.client.events.find((e) => e.type === 'open');
  assert.ok(opened !== undefined, `seed ${seed}: the SDK never opened; events: ${JSON.stringify(s.client.events.slice(0, 5))}`);
  assert.ok(gate.cookieReplies > 10_000, `seed ${seed}: only ${gate.cookieReplies} cookie replies: the relay was not under load`);
  const bound = BUDGET * (floodEndMs / 1000 + 1);
  assert.ok(gate.verifications <= bound, `seed ${seed}: ${gate.verifications} verifications > ${bound}`);
  // Traffic flows under the flood once the session is open.
  const loss = s.deliveredLoss(8_000, 11_000);
  assert.ok(loss.sent > 100 && loss.upstream === 0 && loss.downstream === 0, `seed ${seed}: ${JSON.stringify(loss)}`);
});
