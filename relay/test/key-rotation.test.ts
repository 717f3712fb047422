/**
 * Key rotation on the relay: tickets signed with a key listed in
 * `tunnel.additionalTicketPublicKeys`, and session keys sealed under one in
 * `tunnel.additionalSealKeys`, open sessions; unlisted keys stay refused; the config
 * names a repeated or malformed key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, ErrorCode } from '../../proto/src/errors.js';
import { Rng } from '../../proto/src/rng.js';
import { rawPublicKey, ticketSigningKeyFromSeed, ticketVerifyKeyFromRaw } from '../../proto/src/ticket.js';
import { loadRelayConfig } from '../src/config.js';
import { buildControlPacket } from '../../proto/src/wire.js';
import { baseConfig, controlOf, forgerKey, Harness, mintTicket, sealKey, signingKey, tunnelSpec, type ClientSession } from './support.js';

const client = { address: '198.51.100.20', port: 50000 };
const nextSigningKey = ticketSigningKeyFromSeed(new Rng(77).fillBytes(new Uint8Array(32)));
const nextSealKey = new Rng(78).fillBytes(new Uint8Array(32));

/** Opens a session; returns 'accept', or the typed reason of the refusal. */
function openAnswer(h: Harness, s: ClientSession): string | undefined {
  const [answer] = h.deliver(h.tunnelId, client, buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] }));
  const message = answer === undefined ? undefined : controlOf(answer.bytes);
  if (message?.type === 'sessionAccept') return 'accept';
  return message?.type === 'sessionReject' ? message.reason : undefined;
}

test('a ticket signed with an additional public key opens a session; an unlisted key is still refused as forged', () => {
  const rng = new Rng(5);
  const h = new Harness(baseConfig({ tunnel: tunnelSpec({ additionalTicketPublicKeys: [ticketVerifyKeyFromRaw(rawPublicKey(nextSigningKey))] }) }));
  assert.equal(openAnswer(h, mintTicket(rng)), 'accept', 'the key in use still works');
  assert.equal(openAnswer(h, mintTicket(rng, { key: nextSigningKey })), 'accept', 'the next key works');
  assert.equal(openAnswer(h, mintTicket(rng, { key: forgerKey })), ErrorCode.TicketForged);
  // Without the additional key, the next key's ticket is refused.
  const plain = new Harness(baseConfig());
  assert.equal(openAnswer(plain, mintTicket(rng, { key: nextSigningKey })), ErrorCode.TicketForged);
});

test('a session key sealed under an additional seal key opens; an unlisted seal key is refused', () => {
  const rng = new Rng(6);
  const h = new Harness(baseConfig({ tunnel: tunnelSpec({ additionalSealKeys: [nextSealKey] }) }));
  assert.equal(openAnswer(h, mintTicket(rng)), 'accept');
  assert.equal(openAnswer(h, mintTicket(rng, { sealWith: nextSealKey })), 'accept');
  assert.equal(openAnswer(h, mintTicket(rng, { sealWith: new Rng(79).fillBytes(new Uint8Array(32)) })), ErrorCode.TicketForged);
});

test('config: additionalTicketPublicKeys and additionalSealKeys load; a repeated or short key names the key path', () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-key-rotation-'));
  try {
    const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
    const write = (extra: string) => {
      const path = join(dir, 'relay.yaml');
      writeFileSync(
        path,
        [
          'tunnel:',
          '  listen: 127.0.0.1:0',
          `  ticketPublicKey: ${b64(rawPublicKey(signingKey))}`,
          `  sealKey: ${b64(sealKey)}`,
          '  origins: { game: 127.0.0.1:7777 }',
          extra,
        ].join('\n'),
      );
      return path;
    };
    const loaded = loadRelayConfig(write(`  additionalTicketPublicKeys: [${b64(rawPublicKey(nextSigningKey))}]\n  additionalSealKeys: [${b64(nextSealKey)}]`));
    assert.equal(loaded.core.tunnel?.additionalTicketPublicKeys?.length, 1);
    assert.equal(loaded.core.tunnel?.additionalSealKeys?.length, 1);
    assert.throws(() => loadRelayConfig(write(`  additionalSealKeys: [${b64(sealKey)}]`)), (e: unknown) => e instanceof ConfigError && /tunnel\.additionalSealKeys\[0\]/.test(e.message) && /repeats a key/.test(e.message));
    assert.throws(() => loadRelayConfig(write('  additionalTicketPublicKeys: [AAAA]')), (e: unknown) => e instanceof ConfigError && /tunnel\.additionalTicketPublicKeys\[0\]/.test(e.message) && /32 bytes/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
