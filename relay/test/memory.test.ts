/**
 * Memory: 100,000 idle tunnel sessions, each opened through the real path (a signed
 * ticket verified, its key unsealed), must fit in under 200 MB of heap. Prints the
 * bytes per session measured. Origin-facing sockets belong to the driver and are not
 * part of the core's heap (the kernel holds them; see relay/README.md for fd limits).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Rng } from '../../proto/src/rng.js';
import { RelayCore } from '../src/core/relay-core.js';
import { buildControlPacket } from '../../proto/src/wire.js';
import { baseConfig, mintTicket, openLimits, WALL_EPOCH_MS } from './support.js';

const SESSIONS = 100_000;
const HEAP_BYTES_MAX = 200 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapUsed(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

test(`${SESSIONS.toLocaleString('en')} idle tunnel sessions fit in 200 MB of heap`, { timeout: 180_000 }, () => {
  const rng = new Rng(100);
  const nonceRng = new Rng(101);
  const core = new RelayCore(baseConfig({ limits: { ...openLimits, sessionsMax: SESSIONS } }), { wallClockMs: () => WALL_EPOCH_MS, randomFill: (out) => void nonceRng.fillBytes(out) });
  core.start(0);
  let tunnelId = -1;
  const drain = (): void => {
    for (let e = core.pollEvent(); e; e = core.pollEvent()) if (e.type === 'openSocket' && e.kind === 'tunnel') tunnelId = e.socketId;
    while (core.pollTransmit());
  };
  drain();
  const before = heapUsed();
  for (let i = 0; i < SESSIONS; i++) {
    const s = mintTicket(rng);
    // 200 source addresses, 500 sessions each (a CGNAT-heavy mix).
    const from = { address: `198.51.${(i % 200) >> 8}.${(i % 200) & 255}`, port: 1024 + Math.floor(i / 200) };
    core.handleDatagram(1, tunnelId, from, buildControlPacket(s.high, s.low, { type: 'sessionOpen', ticket: s.ticket, fecModes: ['off'] }));
    drain();
  }
  assert.equal(core.tunnelSessionCount, SESSIONS);
  const after = heapUsed();
  const perSession = (after - before) / SESSIONS;
  process.stdout.write(`# memory: ${SESSIONS} sessions use ${((after - before) / 1048576).toFixed(1)} MB of heap: ${Math.round(perSession)} bytes per session\n`);
  assert.ok(after - before < HEAP_BYTES_MAX, `${after - before} bytes`);
  core.close(2);
});
