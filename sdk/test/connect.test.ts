/**
 * `connect()` on loopback, with the coordinator down and a cache file of candidates:
 * relay candidates that are not an IP literal with a port from 1 to 65535 (from the
 * coordinator's answer or the cache) are skipped with a typed reason and never sent to;
 * a ticket provider that never answers and a bind that fails are typed rejections;
 * none of it leaves an unhandled rejection behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RouteAnswer } from '../../kit/coordinator-client.js';
import { ErrorCode } from '../../proto/src/errors.js';
import { candidatesFromRoute, connect } from '../src/connect.js';
import { SlipstreamError } from '../src/errors.js';
import { freePort } from '../../kit/free-port.js';

/** A TCP port on 127.0.0.1 nothing listens on (it was free a moment ago). */
const closedPort = (): Promise<number> => freePort('tcp');

async function withCache(candidates: unknown[]): Promise<{ coordinator: string; cacheFile: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'slipstream-sdk-connect-'));
  const coordinator = `http://127.0.0.1:${await closedPort()}`;
  const cacheFile = join(dir, 'cache.json');
  writeFileSync(cacheFile, JSON.stringify({ coordinator, origin: 'game', savedAtMs: 0, candidates }));
  return { coordinator, cacheFile, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const grant = { sessionId: '0123456789abcdef', ticket: new Uint8Array(100), sessionKey: new Uint8Array(32) };

/** Runs `body` and fails if an unhandled rejection happened meanwhile (what killed the game). */
async function noUnhandled(body: () => Promise<void>): Promise<void> {
  const seen: unknown[] = [];
  const onRejection = (reason: unknown): void => void seen.push(reason);
  process.on('unhandledRejection', onRejection);
  try {
    await body();
    await sleep(50);
  } finally {
    process.off('unhandledRejection', onRejection);
  }
  assert.deepEqual(seen, [], 'no unhandled rejection');
}

test('relay candidates with hostnames or bad ports (coordinator answer, cache file) are skipped with a typed reason, never sent to', async () => {
  const skipped: SlipstreamError[] = [];
  const legs = { relayToOrigin: { rttMs: 5 } };
  const answer = { candidates: [
    { kind: 'direct', relayId: 'host', tunnelAddress: 'relay.example:4433', probeAddress: 'relay.example:4433', costMs: 10, legs },
    { kind: 'direct', relayId: 'big', tunnelAddress: '127.0.0.1:99999', probeAddress: '127.0.0.1:99999', costMs: 10, legs },
    { kind: 'direct', relayId: 'zero', tunnelAddress: '127.0.0.1:0', probeAddress: '127.0.0.1:4434', costMs: 10, legs },
    { kind: 'direct', relayId: 'ok', tunnelAddress: '127.0.0.1:4433', probeAddress: '[::1]:4434', costMs: 10, legs },
  ] } as unknown as RouteAnswer;
  const out = candidatesFromRoute(answer, skipped);
  assert.deepEqual(out.map((c) => c.id), ['ok']);
  assert.deepEqual(skipped.map((e) => e.code), [ErrorCode.InvalidRelayAddress, ErrorCode.InvalidRelayAddress, ErrorCode.InvalidRelayAddress]);

  await noUnhandled(async () => {
    // Only invalid entries in the cache, coordinator down: a typed rejection, no crash.
    const bad = await withCache([{ id: 'h', tunnel: { address: 'relay.example', port: 4433 }, probe: { address: 'relay.example', port: 4433 } }, { id: 'p', tunnel: { address: '127.0.0.1', port: 99_999 }, probe: { address: '127.0.0.1', port: 99_999 } }]);
    try {
      await assert.rejects(connect({ coordinator: bad.coordinator, origin: 'game', cacheFile: bad.cacheFile, ticket: grant, connectTimeoutMs: 300, coordinatorTimeoutMs: 500 }), (e: unknown) => e instanceof SlipstreamError && e.code === ErrorCode.CoordinatorUnreachable);
    } finally {
      bad.cleanup();
    }
    // One invalid and one valid (silent) relay: the invalid one is skipped; the connect times out typed.
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    const port = silent.address().port;
    const mixed = await withCache([{ id: 'h', tunnel: { address: 'relay.example', port: 4433 }, probe: { address: 'relay.example', port: 4433 } }, { id: 'ok', tunnel: { address: '127.0.0.1', port }, probe: { address: '127.0.0.1', port } }]);
    try {
      await assert.rejects(connect({ coordinator: mixed.coordinator, origin: 'game', cacheFile: mixed.cacheFile, ticket: grant, connectTimeoutMs: 300, coordinatorTimeoutMs: 500, bindAddress: '127.0.0.1' }), (e: unknown) => e instanceof SlipstreamError && e.code === ErrorCode.NoRelay);
    } finally {
      mixed.cleanup();
      silent.close();
    }
  });
});

test('a ticket provider that never answers rejects with SLIP_ERR_TICKET_PROVIDER; a bind failure is typed', async () => {
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  const port = silent.address().port;
  const cache = await withCache([{ id: 'ok', tunnel: { address: '127.0.0.1', port }, probe: { address: '127.0.0.1', port } }]);
  try {
    await assert.rejects(
      connect({ coordinator: cache.coordinator, origin: 'game', cacheFile: cache.cacheFile, ticketProvider: () => new Promise(() => undefined), ticketProviderTimeoutMs: 100, coordinatorTimeoutMs: 500 }),
      (e: unknown) => e instanceof SlipstreamError && e.code === ErrorCode.TicketProvider && /did not answer within 100 ms/.test(e.message),
    );
    // 192.0.2.1 (TEST-NET-1) is not an address of this machine: the bind fails.
    await assert.rejects(connect({ coordinator: cache.coordinator, origin: 'game', cacheFile: cache.cacheFile, ticket: grant, bindAddress: '192.0.2.1', coordinatorTimeoutMs: 500 }), (e: unknown) => e instanceof SlipstreamError && e.code === ErrorCode.BindFailed);
  } finally {
    cache.cleanup();
    silent.close();
  }
});
