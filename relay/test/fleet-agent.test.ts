/**
 * The relay's fleet core, driven directly (sans-IO): virtual time, the coordinator's
 * answers written by hand. Each test pins one rule of the module comment of
 * relay/src/core/fleet-agent.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FleetAgentCore, REGISTER_BACKOFF_MS_MAX, REGISTER_BACKOFF_MS_MIN, type FleetAgentEvent, type FleetAgentSpec, type FleetRequest, type FleetResponse } from '../src/core/fleet-agent.js';

const spec: FleetAgentSpec = {
  relayId: 'fra-1',
  region: 'eu-central',
  latitude: 50.1,
  longitude: 8.7,
  tunnelAddress: '203.0.113.7:4433',
  probeAddress: '203.0.113.7:4433',
  capacitySessions: 500,
  heartbeatIntervalMs: 2000,
  meshRefreshMs: 10_000,
  probeIntervalMs: 1000,
  probeTimeoutMs: 800,
  reportIntervalMs: 5000,
  originProbe: 'tcp',
};

const origins = new Map([['eu-game', { address: '198.51.100.9', port: 27015 }]]);
const registerAnswer = (heartbeatIntervalMs = 1000, relays = [{ relayId: 'ams-1', probeAddress: '192.0.2.4:4433', region: 'eu-west' }]): FleetResponse => ({ ok: true, body: { relayId: 'fra-1', leaseMs: 3000, heartbeatIntervalMs, ticketPublicKey: '', relays } });
const refused = (status: number, code: string, message: string): FleetResponse => ({ ok: false, failure: { status, code, message } });
const unreachable: FleetResponse = { ok: false, failure: { status: undefined, code: undefined, message: 'fetch failed' } };

/** A core and what it asked for and said, drained after every input. */
class Harness {
  readonly core = new FleetAgentCore(spec, { load: () => ({ sessions: 7, packetsPerSecond: 120, cpuFraction: 0.25 }), origins: () => origins });
  readonly requests: FleetRequest[] = [];
  readonly events: FleetAgentEvent[] = [];
  nowMs = 0;

  drain(): this {
    // TCP probes to origins are the prober's business (relay/test/path-prober.test.ts).
    for (let e = this.core.pollEvent(); e !== undefined; e = this.core.pollEvent()) if (e.type !== 'connect') this.events.push(e);
    for (let r = this.core.pollRequest(); r !== undefined; r = this.core.pollRequest()) this.requests.push(r);
    while (this.core.pollTransmit() !== undefined);
    return this;
  }

  /** Runs timers up to `untilMs`. */
  runTo(untilMs: number): this {
    for (let at = this.core.pollTimeout(); at !== undefined && at <= untilMs; at = this.core.pollTimeout()) {
      this.nowMs = Math.max(this.nowMs, at);
      this.core.handleTimeout(this.nowMs);
      this.drain();
    }
    this.nowMs = untilMs;
    return this;
  }

  answer(request: FleetRequest | undefined, response: FleetResponse): this {
    assert.ok(request, 'a request to answer');
    this.core.handleResponse(this.nowMs, request.id, response);
    return this.drain();
  }

  /** Takes the requests asked for so far. */
  take(kind?: FleetRequest['kind']): FleetRequest[] {
    const taken = this.requests.filter((r) => kind === undefined || r.kind === kind);
    for (const r of taken) this.requests.splice(this.requests.indexOf(r), 1);
    return taken;
  }

  started(): this {
    this.core.start(this.nowMs);
    return this.drain();
  }

  /** Started and registered, everything asked so far taken. */
  registered(answer = registerAnswer()): this {
    this.started().answer(this.take('register')[0], answer);
    this.take();
    this.events.length = 0;
    return this;
  }
}

describe('fleet agent core: registration', () => {
  test('start registers the relay with its fleet section; accepted, it heartbeats its load at once and reads the fleet list', () => {
    const h = new Harness().started();
    const [register] = h.take();
    assert.deepEqual(register, { id: register!.id, kind: 'register', info: { relayId: 'fra-1', region: 'eu-central', latitude: 50.1, longitude: 8.7, tunnelAddress: '203.0.113.7:4433', probeAddress: '203.0.113.7:4433', capacitySessions: 500 } });
    assert.equal(h.core.accepted, false);
    h.answer(register, registerAnswer());
    assert.equal(h.core.accepted, true);
    assert.deepEqual(h.events.slice(0, 2), [
      { type: 'registered', leaseMs: 3000, heartbeatIntervalMs: 1000, mesh: 1 },
      { type: 'peers', addresses: ['192.0.2.4'] },
    ]);
    const after = h.take();
    assert.deepEqual(after.map((r) => r.kind), ['heartbeat', 'fleet']);
    assert.deepEqual((after[0] as Extract<FleetRequest, { kind: 'heartbeat' }>).load, { sessions: 7, packetsPerSecond: 120, cpuFraction: 0.25, draining: false });
    assert.equal(h.core.prober.targetCount, 2, 'the other relay and the origin');
  });

  test('a failed registration is retried with backoff from 250 ms doubling to 5 s, and reported once per streak', () => {
    const h = new Harness().started();
    const retries: number[] = [];
    let last = 0;
    for (let i = 0; i < 8; i++) {
      h.answer(h.take('register')[0], unreachable);
      let at = h.core.pollTimeout()!;
      for (h.runTo(at); h.requests.length === 0; h.runTo(at)) at = h.core.pollTimeout()!;
      retries.push(at - last);
      last = at;
    }
    assert.deepEqual(retries, [REGISTER_BACKOFF_MS_MIN, 500, 1000, 2000, 4000, REGISTER_BACKOFF_MS_MAX, REGISTER_BACKOFF_MS_MAX, REGISTER_BACKOFF_MS_MAX]);
    assert.deepEqual(h.events.filter((e) => e.type === 'failed'), [{ type: 'failed', what: 'register', reason: 'fetch failed' }]);
    h.answer(h.take('register')[0], registerAnswer());
    assert.ok(h.events.some((e) => e.type === 'recovered' && e.what === 'register'));
  });

  test('heartbeats go every min(fleet.heartbeatIntervalMs, the coordinator\'s interval)', () => {
    const h = new Harness().registered(registerAnswer(5000));
    h.runTo(10_000);
    assert.equal(h.take('heartbeat').length, 5, 'every 2000 ms (the relay\'s own interval is shorter)');
    const g = new Harness().registered(registerAnswer(1000));
    g.runTo(10_000);
    assert.equal(g.take('heartbeat').length, 10, 'every 1000 ms (the coordinator\'s)');
  });

  test('a heartbeat answered unknown_relay re-joins with the same relay id; the agent is not accepted until then', () => {
    const h = new Harness().registered();
    h.runTo(1000);
    h.answer(h.take('heartbeat')[0], refused(404, 'unknown_relay', 'relay fra-1 is not registered here'));
    assert.equal(h.core.accepted, false);
    assert.deepEqual(h.events, [{ type: 'rejoining' }], 'not a failure: the coordinator forgot us');
    const [again] = h.take('register');
    assert.equal((again as Extract<FleetRequest, { kind: 'register' }>).info.relayId, 'fra-1');
    h.runTo(5000);
    assert.equal(h.take('heartbeat').length, 0, 'no heartbeat while re-joining');
    h.answer(again, registerAnswer());
    assert.equal(h.core.accepted, true);
    assert.equal(h.take('heartbeat').length, 1, 'a heartbeat at once after the re-join');
  });

  test('any other heartbeat failure keeps the registration and is reported once', () => {
    const h = new Harness().registered();
    for (let t = 1000; t <= 3000; t += 1000) {
      h.runTo(t);
      h.answer(h.take('heartbeat')[0], unreachable);
    }
    assert.equal(h.core.accepted, false);
    assert.equal(h.core.isRegistered, true);
    assert.deepEqual(h.events, [{ type: 'failed', what: 'heartbeat', reason: 'fetch failed' }]);
    h.runTo(4000);
    h.answer(h.take('heartbeat')[0], { ok: true, body: {} });
    assert.equal(h.core.accepted, true);
    assert.deepEqual(h.events.at(-1), { type: 'recovered', what: 'heartbeat' });
  });
});

describe('fleet agent core: the fleet list and reports', () => {
  test('the fleet list is re-read every meshRefreshMs once registered; unhealthy relays and the relay itself are not probed', () => {
    const h = new Harness().started();
    h.runTo(25_000);
    assert.equal(h.take('fleet').length, 0, 'not before registration');
    h.answer(h.take('register')[0], registerAnswer());
    h.take();
    h.runTo(30_000);
    const [fleet] = h.take('fleet');
    assert.ok(fleet);
    h.answer(fleet, { ok: true, body: { relays: [
      { relayId: 'fra-1', probeAddress: '203.0.113.7:4433', health: 'healthy' },
      { relayId: 'ams-1', probeAddress: '192.0.2.4:4433', health: 'healthy' },
      { relayId: 'par-1', probeAddress: '192.0.2.5:4433', health: 'draining' },
      { relayId: 'mad-1', probeAddress: '192.0.2.6:4433', health: 'unhealthy' },
    ] } });
    assert.deepEqual(h.events.filter((e) => e.type === 'peers').at(-1), { type: 'peers', addresses: ['192.0.2.4', '192.0.2.5'] });
    assert.equal(h.core.prober.targetCount, 3);
  });

  test('path reports go to the coordinator only while registered', () => {
    const h = new Harness().registered();
    h.runTo(4999);
    assert.equal(h.take('reports').length, 0);
    h.runTo(12_000);
    const reports = h.take('reports');
    assert.ok(reports.length > 0, 'a window of (lost) probes is reported');
    h.answer(reports[0], { ok: true, body: { taken: 1, skipped: [] } });
    assert.equal(h.core.reportsSent, 1);
    const [hb] = h.take('heartbeat');
    h.answer(hb, refused(404, 'unknown_relay', 'forgotten'));
    h.take();
    h.runTo(30_000);
    assert.equal(h.take('reports').length, 0, 'none while re-joining');
  });
});

describe('fleet agent core: acceptance, draining and stop', () => {
  test('awaitAcceptance: accepted; refused (4xx, with the coordinator\'s reason, retrying on); silent until the deadline', () => {
    const ok = new Harness().started();
    ok.core.awaitAcceptance(0, 10_000);
    ok.answer(ok.take('register')[0], registerAnswer());
    assert.deepEqual(ok.events.filter((e) => e.type === 'acceptance'), [{ type: 'acceptance', ok: true, reason: 'accepted' }]);

    const no = new Harness().started();
    no.core.awaitAcceptance(0, 10_000);
    no.answer(no.take('register')[0], refused(401, 'unauthorized', 'coordinator answered 401 unauthorized: wrong fleet secret'));
    assert.deepEqual(no.events.filter((e) => e.type === 'acceptance'), [{ type: 'acceptance', ok: false, reason: 'coordinator answered 401 unauthorized: wrong fleet secret' }]);
    no.runTo(1000);
    assert.equal(no.take('register').length, 1, 'it keeps retrying');

    const silent = new Harness().started();
    silent.core.awaitAcceptance(0, 10_000);
    silent.answer(silent.take('register')[0], unreachable);
    silent.runTo(9999);
    assert.equal(silent.events.filter((e) => e.type === 'acceptance').length, 0, 'a 5xx or no answer is an outage: wait on');
    silent.runTo(10_000);
    assert.deepEqual(silent.events.filter((e) => e.type === 'acceptance'), [{ type: 'acceptance', ok: false, reason: 'no answer from the coordinator within 10000 ms' }]);
  });

  test('setDraining sends a heartbeat saying so at once (none before registration: the first one will)', () => {
    const early = new Harness().started();
    assert.equal(early.core.setDraining(0), undefined);
    early.answer(early.take('register')[0], registerAnswer());
    assert.equal((early.take('heartbeat')[0] as Extract<FleetRequest, { kind: 'heartbeat' }>).load.draining, true);
    const h = new Harness().registered();
    const id = h.core.setDraining(500);
    h.drain();
    const [hb] = h.take('heartbeat');
    assert.equal(hb?.id, id);
    assert.equal((hb as Extract<FleetRequest, { kind: 'heartbeat' }>).load.draining, true);
  });

  test('stop: no more requests or timers, late answers ignored, a waiting acceptance hears "closed"', () => {
    const h = new Harness().started();
    h.core.awaitAcceptance(0, 10_000);
    const [register] = h.take('register');
    h.core.stop();
    h.drain();
    assert.deepEqual(h.events, [{ type: 'acceptance', ok: false, reason: 'the agent was closed' }]);
    h.answer(register, registerAnswer());
    assert.equal(h.core.accepted, false);
    assert.equal(h.core.pollTimeout(), undefined);
    assert.deepEqual(h.requests, []);
  });
});
