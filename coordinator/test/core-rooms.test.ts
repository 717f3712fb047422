/**
 * Specifications of the coordinator core's policy rooms: the client report budget,
 * fleet-secret rotation and ticket policy. Each runs on the caller's `nowMs` alone.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TICKET_CLOCK_SKEW_MS } from '../../proto/src/ticket.js';
import { CLIENT_REPORT_SAMPLES_MAX, CLIENT_REPORTS_BURST, FLEET_REFUSAL_LOG_INTERVAL_MS, SESSION_TTL_S_DEFAULT } from '../src/core/constants.js';
import { FleetSecretRotation } from '../src/core/fleet-secrets.js';
import { Registry } from '../src/core/registry.js';
import { clientReportSamples, ReportBudget } from '../src/core/report-budget.js';
import { TicketPolicy, type TicketPolicyContext } from '../src/core/ticket-policy.js';

describe('report budget', () => {
  test('a source spends its burst at once, then earns perSecond reports a second', () => {
    const budget = new ReportBudget({ burst: 3, perSecond: 2 });
    for (let i = 0; i < 3; i++) assert.equal(budget.take(0, 'a'), true);
    assert.equal(budget.take(0, 'a'), false);
    assert.equal(budget.take(0, 'b'), true, 'another source has its own bucket');
    assert.equal(budget.take(500, 'a'), true, 'half a second earns one report');
    assert.equal(budget.take(500, 'a'), false);
    assert.equal(budget.take(60_000, 'a'), true);
    assert.equal(new ReportBudget().burst, CLIENT_REPORTS_BURST);
  });
  test('beyond sourcesMax the least recently seen source is forgotten (and starts full)', () => {
    const budget = new ReportBudget({ burst: 1, perSecond: 0, sourcesMax: 2 });
    assert.equal(budget.take(0, 'a'), true);
    assert.equal(budget.take(0, 'b'), true);
    assert.equal(budget.take(0, 'a'), false, 'a is now the most recently seen');
    assert.equal(budget.take(0, 'c'), true, 'c pushes out b');
    assert.equal(budget.size, 2);
    assert.equal(budget.take(0, 'b'), true, 'b was forgotten');
    assert.equal(budget.take(0, 'c'), false);
  });
  test('one client report counts for at most CLIENT_REPORT_SAMPLES_MAX samples', () => {
    assert.equal(clientReportSamples(7), 7);
    assert.equal(clientReportSamples(1_000_000), CLIENT_REPORT_SAMPLES_MAX);
  });
});

describe('fleet-secret rotation', () => {
  const info = (relayId: string) => ({ relayId, region: 'eu', latitude: 50, longitude: 8, tunnelAddress: `${relayId}:4433`, probeAddress: `${relayId}:4434`, capacitySessions: 10 });

  test('the first secret is current, the rest previous; a fingerprint not held is unknown', () => {
    const rotation = new FleetSecretRotation(['new', 'old']);
    assert.equal(rotation.previousCount, 1);
    assert.deepEqual(rotation.role('new'), { role: 'current', index: 0 });
    assert.deepEqual(rotation.role('old'), { role: 'previous', index: 1 });
    assert.deepEqual(rotation.role('other'), { role: 'unknown', index: -1 });
    assert.deepEqual(rotation.role(undefined), { role: 'unknown', index: -1 });
  });
  test('a move onto a previous secret or back onto the current one is reported once', () => {
    const rotation = new FleetSecretRotation(['new', 'old']);
    const [current, previous] = rotation.accepted;
    assert.deepEqual(rotation.move(undefined, previous!), { kind: 'onPrevious', previousIndex: 1 });
    assert.equal(rotation.move('old', previous!), undefined);
    assert.deepEqual(rotation.move('old', current!), { kind: 'onCurrent' });
    assert.equal(rotation.move(undefined, current!), undefined, 'a first registration on the current secret is no move');
    assert.equal(rotation.move('new', current!), undefined);
  });
  test('the report counts relays by secret and lists those on previous or unknown ones, by id', () => {
    const rotation = new FleetSecretRotation(['new', 'old']);
    const registry = new Registry({ leaseMs: 1_000 });
    registry.register(0, info('c'), 'old');
    registry.register(0, info('a'), 'new');
    registry.register(0, info('b'), 'old');
    registry.register(0, info('d'));
    const report = rotation.report(0, registry);
    assert.equal(report.accepted, 2);
    assert.deepEqual(report.relays, { current: 1, previous: 2, unknown: 1, identity: 0 });
    assert.deepEqual(report.relaysOnPrevious, [{ relayId: 'b', health: 'healthy', previousIndex: 1 }, { relayId: 'c', health: 'healthy', previousIndex: 1 }]);
    assert.deepEqual(report.relaysOnUnknown, [{ relayId: 'd', health: 'healthy' }]);
  });
  test('a refusal is logged at most once per interval per source, and the throttle is bounded', () => {
    const rotation = new FleetSecretRotation(['new'], { refusalSourcesMax: 2 });
    assert.equal(rotation.shouldLogRefusal(0, 'x'), true);
    assert.equal(rotation.shouldLogRefusal(FLEET_REFUSAL_LOG_INTERVAL_MS - 1, 'x'), false);
    assert.equal(rotation.shouldLogRefusal(FLEET_REFUSAL_LOG_INTERVAL_MS, 'x'), true);
    assert.equal(rotation.shouldLogRefusal(0, 'y'), true);
    assert.equal(rotation.shouldLogRefusal(0, 'z'), true, 'z pushes out x');
    assert.equal(rotation.shouldLogRefusal(FLEET_REFUSAL_LOG_INTERVAL_MS, 'x'), true);
  });
});

describe('ticket policy', () => {
  const context = (exitOk = true): TicketPolicyContext => ({
    origin: (name) => (name === 'game' ? {} : undefined),
    pickExit: (_nowMs, _origin, relayId) => (exitOk ? { ok: true, relayId: relayId === 'auto' ? 'fra-1' : relayId, address: '192.0.2.1:4433' } : { ok: false }),
  });

  test('a request without ttlS or limits gets the default lifetime and the configured limits', () => {
    const policy = new TicketPolicy({ packetsPerSecond: 100, bytesPerSecond: 50_000 });
    const decided = policy.grant(1_000, { origin: 'game' }, context());
    assert.deepEqual(decided, { ok: true, grant: { origin: 'game', issuedAtMs: 1_000, expiresAtMs: 1_000 + SESSION_TTL_S_DEFAULT * 1000, limits: { packetsPerSecond: 100, bytesPerSecond: 50_000 } } });
  });
  test('asked lifetime and narrower limits are granted; an exit comes with its address', () => {
    const policy = new TicketPolicy({ ttlSDefault: 60, ttlSMax: 600, packetsPerSecond: 100, bytesPerSecond: 50_000 });
    const decided = policy.grant(0, { origin: 'game', ttlS: 30, limits: { packetsPerSecond: 10 }, exitRelay: 'auto' }, context());
    assert.ok(decided.ok);
    assert.equal(decided.grant.expiresAtMs, 30_000);
    assert.deepEqual(decided.grant.limits, { packetsPerSecond: 10, bytesPerSecond: 50_000 });
    assert.deepEqual(decided.grant.exit, { relayId: 'fra-1', address: '192.0.2.1:4433' });
  });
  test('an unknown origin or an exit no relay can be is refused, origin first', () => {
    const policy = new TicketPolicy();
    assert.deepEqual(policy.grant(0, { origin: 'nope', exitRelay: 'auto' }, context(false)), { ok: false, refusal: 'unknownOrigin' });
    assert.deepEqual(policy.grant(0, { origin: 'game', exitRelay: 'ams-2' }, context(false)), { ok: false, refusal: 'noExitRelay' });
  });
  test('a revocation outlives the ticket by the clock skew; an unknown session is assumed to live ttlSMax', () => {
    const policy = new TicketPolicy({ ttlSMax: 600 });
    assert.equal(policy.revocationExpiresAtMs(1_000, 5_000), 5_000 + TICKET_CLOCK_SKEW_MS);
    assert.equal(policy.revocationExpiresAtMs(1_000, undefined), 1_000 + 600_000 + TICKET_CLOCK_SKEW_MS);
  });
});
