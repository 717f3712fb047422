/**
 * `slipstream bench flood` end to end, CI-sized (`--quick --seconds 2 --rate 3000
 * --cases udp-spoof`): it starts the coordinator, the relay, `connect` and the flooder as
 * real processes, and its JSON keeps the contract of bench/flood.ts. Figures are not
 * judged against the targets here (test/e2e-relay-flood.test.ts asserts the
 * behaviour under a flood; tests check behaviour, not timing): only that each is a sane
 * measured number, that the flood reached the relay, and that new players get in when
 * there is no flood. Also: the echo origin ignores junk, and a bad case is a usage error.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { runCli } from './support/run-cli.js';
import { startEchoOrigin } from '../bench/qoe-traffic.js';

/** About 20 s on a quiet machine; generous, for a machine running other test files beside it. */
const BENCH_TIMEOUT_MS = 90_000;

interface Flow {
  loss: number;
  rttP50Ms: number;
  rttP99Ms: number;
  sent: number;
  echoed: number;
}
interface Admission {
  admitted: boolean;
  ms: number;
}
interface Window {
  l4: Flow;
  tunnel: Flow;
  newL4Player: Admission;
  newTcpPlayer: Admission;
  newTunnelSession: Admission;
  relayCpuFraction: number;
  relayLogLinesPerSecond: number;
  relayEventLoopP99Ms: number;
  metricDeltas: Record<string, number>;
}

function checkWindow(w: Window, seconds: number, what: string): void {
  for (const [name, flow] of [['l4', w.l4], ['tunnel', w.tunnel]] as const) {
    assert.equal(flow.sent, 60 * seconds, `${what} ${name}: sent`);
    assert.ok(flow.echoed >= 0 && flow.echoed <= flow.sent, `${what} ${name}: echoed ${flow.echoed}`);
    assert.ok(flow.loss >= 0 && flow.loss <= 1, `${what} ${name}: loss ${flow.loss}`);
    assert.ok(flow.echoed === 0 || (flow.rttP50Ms > 0 && flow.rttP99Ms >= flow.rttP50Ms), `${what} ${name}: RTT p50 ${flow.rttP50Ms} p99 ${flow.rttP99Ms}`);
  }
  for (const a of [w.newL4Player, w.newTcpPlayer, w.newTunnelSession]) assert.ok(typeof a.admitted === 'boolean' && a.ms >= 0, `${what}: admission ${JSON.stringify(a)}`);
  assert.ok(w.relayCpuFraction > 0 && w.relayCpuFraction < 4, `${what}: relay CPU ${w.relayCpuFraction}`);
  assert.ok(w.relayLogLinesPerSecond >= 0, `${what}: log lines/s ${w.relayLogLinesPerSecond}`);
  assert.ok(w.relayEventLoopP99Ms >= 0, `${what}: event-loop p99 ${w.relayEventLoopP99Ms}`);
  assert.equal(typeof w.metricDeltas, 'object');
}

describe('slipstream bench flood', () => {
  test('the echo origin ignores what it is told to (flood junk stays unreplied)', async () => {
    const origin = await startEchoOrigin('every', (bytes) => bytes[0] === 0x6a);
    const socket = createSocket('udp4');
    try {
      const echoes: number[] = [];
      socket.on('message', (m) => echoes.push(m[0]!));
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const game = Buffer.alloc(100);
      game[0] = 2;
      for (let i = 0; i < 20 && !echoes.includes(2); i++) {
        socket.send(Buffer.alloc(64, 0x6a), origin.port, '127.0.0.1');
        socket.send(game, origin.port, '127.0.0.1');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.ok(echoes.includes(2), 'the game datagram was echoed');
      assert.ok(!echoes.includes(0x6a), 'the junk was not');
    } finally {
      socket.close();
      await origin.close();
    }
  });

  test('--quick --json: each window has sane figures, the flood reached the relay, new players get in without it', { timeout: BENCH_TIMEOUT_MS }, async () => {
    const r = await runCli(['bench', 'flood', '--quick', '--seconds', '2', '--rate', '3000', '--cases', 'udp-spoof', '--json'], BENCH_TIMEOUT_MS);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /bench flood: udp-spoof: flood window/, 'progress goes to stderr');
    const result = JSON.parse(r.stdout) as { floodRate: number; seconds: number; cases: { name: string; attack: { kind: string; sent: number; ratePerSecond: number; sources: number }; baseline: Window; flood: Window }[] };
    assert.equal(result.floodRate, 3000);
    assert.equal(result.seconds, 2);
    assert.deepEqual(result.cases.map((c) => c.name), ['udp-spoof']);
    const [c] = result.cases;
    checkWindow(c!.baseline, 2, 'baseline');
    checkWindow(c!.flood, 2, 'flood');
    assert.equal(c!.attack.kind, 'udp');
    assert.ok(c!.attack.sent > 0 && c!.attack.ratePerSecond > 0 && c!.attack.sources > 0, `attack ${JSON.stringify(c!.attack)}`);
    // Behaviour: the flood's sources outnumber the relay's UDP budget, so it shed flows.
    assert.ok((c!.flood.metricDeltas.slipstream_relay_udp_flows_shed_total ?? 0) > 0, `shed during the flood: ${JSON.stringify(c!.flood.metricDeltas)}`);
    // Without a flood every new player gets in (within the bench's generous 10 s).
    for (const a of [c!.baseline.newL4Player, c!.baseline.newTcpPlayer, c!.baseline.newTunnelSession]) assert.ok(a.admitted, `baseline admission ${JSON.stringify(a)}`);
  });

  test('an unknown case is a usage error (exit 2) naming the flag', async () => {
    const r = await runCli(['bench', 'flood', '--cases', 'udp-spoof,nope'], 30_000);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--cases: unknown case 'nope'/);
  });
});
