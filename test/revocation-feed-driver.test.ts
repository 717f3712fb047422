/**
 * The relay's revocation-feed driver (relay/src/revocation-feed.ts) against a real
 * coordinator started in this process: revoked sessions reach the handler, and a handler
 * that throws is reported through `onError` while the feed goes on (the driver runs in
 * request callbacks, where a throw would otherwise end the relay as an unhandled
 * rejection and stop the feed).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { ConfigReader } from '../kit/config.js';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { loadSettings } from '../coordinator/src/config.js';
import { startCoordinator } from '../coordinator/src/http.js';
import { followRevocationFeed } from '../relay/src/revocation-feed.js';
import { until } from './support/wait.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
process.on('unhandledRejection', onUnhandled);
after(() => process.off('unhandledRejection', onUnhandled));

test('a revocation handler that throws is reported and the feed goes on: the next revocation still arrives', async () => {
  const fleetSecret = randomBytes(24).toString('base64');
  const apiKey = randomBytes(24).toString('base64');
  const yaml = `keys:\n  fleetSecret: ${fleetSecret}\n  apiKeys: [${apiKey}]\norigins:\n  - name: game\n    address: 127.0.0.1:27015\n`;
  const coordinator = await startCoordinator({ settings: loadSettings(new ConfigReader('<test>', yaml), { listen: '127.0.0.1:0' }), logger: pino({ level: 'silent' }) });
  const relayClient = new CoordinatorClient({ baseUrl: coordinator.url, fleetSecret });
  const backend = new CoordinatorClient({ baseUrl: coordinator.url, apiKey });
  const delivered: string[] = [];
  const errors: string[] = [];
  let calls = 0;
  const follower = followRevocationFeed(
    relayClient,
    (revocations) => {
      calls++;
      if (calls === 1) throw new Error('handler bug');
      for (const r of revocations) delivered.push(r.sessionId);
    },
    (reason) => errors.push(reason),
    { waitMs: 1000 },
  );
  try {
    const first = await backend.issueSession({ origin: 'game' });
    const second = await backend.issueSession({ origin: 'game' });
    await backend.revokeSession(first.sessionId);
    await until(() => calls >= 1, 10_000, 'the first revocation to reach the handler');
    await backend.revokeSession(second.sessionId);
    await until(() => delivered.includes(second.sessionId), 10_000, 'the second revocation after the handler threw');
    assert.ok(errors.some((e) => e.includes('revocation handler failed: handler bug')), `onError heard of the throw: ${JSON.stringify(errors)}`);
    assert.deepEqual(unhandled, []);
  } finally {
    follower.close();
    await coordinator.close();
  }
});
