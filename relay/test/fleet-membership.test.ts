/**
 * Reload of the relay's fleet membership, driven directly (sans-IO): the rule of
 * relay/src/core/fleet-membership.ts — the new membership must be accepted before the
 * old one stops; refused, silent or unstartable keeps the running one and says why.
 * (The end-to-end version, with real processes: test/e2e-relay-fleet.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FleetMembershipCore, type FleetMembershipEvent } from '../src/core/fleet-membership.js';

function drain(core: FleetMembershipCore): FleetMembershipEvent[] {
  const events: FleetMembershipEvent[] = [];
  for (let e = core.pollEvent(); e !== undefined; e = core.pollEvent()) events.push(e);
  return events;
}

test('a changed membership starts a new agent; only its acceptance retires the running one', () => {
  const core = new FleetMembershipCore('A');
  assert.equal(core.running, 0);
  core.reload('A');
  assert.deepEqual(drain(core), [], 'unchanged settings: nothing to do');
  core.reload('B');
  assert.deepEqual(drain(core), [{ type: 'join', generation: 1, key: 'B' }]);
  assert.equal(core.running, 0, 'the old agent runs while the new one waits');
  assert.equal(core.settingsApplied, false);
  core.agentAcceptance(1, true, 'accepted');
  assert.deepEqual(drain(core), [{ type: 'changed', generation: 1, previous: 0, key: 'B' }]);
  assert.equal(core.running, 1);
  assert.equal(core.settingsApplied, true);
});

test('refused, silent or unable to start: the new agent stops, the running membership stays, and the reason is given', () => {
  for (const fail of [
    (core: FleetMembershipCore) => core.agentAcceptance(1, false, 'coordinator answered 401 unauthorized'),
    (core: FleetMembershipCore) => core.agentAcceptance(1, false, 'no answer from the coordinator within 10000 ms'),
    (core: FleetMembershipCore) => core.agentStartFailed(1, 'fleet.tunnelAddress: missing'),
  ]) {
    const core = new FleetMembershipCore('A');
    core.reload('B');
    drain(core);
    fail(core);
    const [kept] = drain(core);
    assert.equal(kept?.type, 'kept');
    assert.equal(kept?.type === 'kept' && kept.generation, 1);
    assert.equal(core.running, 0);
    assert.equal(core.isRunning('A'), true);
    assert.equal(core.settingsApplied, false, 'the file says B: the metric shows it is not applied');
  }
});

test('a removed fleet section is left at once; joining from none needs no agent to retire', () => {
  const core = new FleetMembershipCore('A');
  core.reload('');
  assert.deepEqual(drain(core), [{ type: 'changed', generation: undefined, previous: 0, key: '' }]);
  assert.equal(core.running, undefined);
  core.reload('C');
  assert.deepEqual(drain(core), [{ type: 'join', generation: 1, key: 'C' }]);
  core.agentAcceptance(1, true, 'accepted');
  assert.deepEqual(drain(core), [{ type: 'changed', generation: 1, previous: undefined, key: 'C' }]);
});

test('changes run one after another, each with the settings current when it starts; late news of a retired agent is ignored', () => {
  const core = new FleetMembershipCore('A');
  core.reload('B');
  core.reload('C');
  assert.deepEqual(drain(core), [{ type: 'join', generation: 1, key: 'B' }], 'C waits for B');
  core.agentAcceptance(1, false, 'refused');
  assert.deepEqual(drain(core), [
    { type: 'kept', generation: 1, key: 'B', reason: 'refused' },
    { type: 'join', generation: 2, key: 'C' },
  ]);
  core.agentAcceptance(1, true, 'accepted');
  assert.deepEqual(drain(core), [], 'generation 1 was already given up');
  core.agentAcceptance(2, true, 'accepted');
  assert.deepEqual(drain(core), [{ type: 'changed', generation: 2, previous: 0, key: 'C' }]);
  core.close();
  core.reload('D');
  assert.deepEqual(drain(core), [], 'closed: nothing more');
});
