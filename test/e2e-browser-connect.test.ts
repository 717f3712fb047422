/**
 * End-to-end, issue #15 item 2, in real Chromium: a page loads `slipstream/browser`
 * bundled by esbuild for the browser (no Node polyfills) and calls `connect()` with a
 * real coordinator process (candidates, tickets through the page's backend), two real
 * relay processes with browser entries and a UDP echo origin. It sends 60 messages/s
 * for 10 s and every echo comes back; SIGKILL of the relay it uses moves it to its warm
 * backup (same connection, same session id, echoes resume); revoking the session at the
 * coordinator ends the page's connection with `SLIP_ERR_TICKET_REVOKED`. The failover
 * gap and the revocation delay are printed (the issue's figures: under 1 s each), and
 * asserted only against generous bounds that a busy machine cannot miss. A forged ticket
 * is refused at signaling (`SLIP_ERR_TICKET_FORGED`) and an unknown origin by the
 * coordinator (`SLIP_ERR_UNKNOWN_ORIGIN`): `connect()` rejects with those codes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openFleetPage, startBrowserFleet } from './support/browser-fleet.js';
import { eventually } from './support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-browser-connect-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const RATE = 60;

interface Summary {
  relayId: string | undefined;
  backupId: string | undefined;
  failovers: number;
  fecMode: string | undefined;
  sessionId: string;
  closed: boolean;
  closeReason: string | null | undefined;
  paths: { relayId: string | undefined; reason: string; atMs: number }[];
  errors: string[];
  nowMs: number;
}

test('Chromium: connect() refuses a forged ticket and an unknown origin; through real relays every echo at 60/s arrives, failover to the warm backup keeps the session, revocation ends it', { timeout: 90_000 }, async () => {
  const fleet = await startBrowserFleet(join(dir, 'fleet'), [{ id: 'web-a' }, { id: 'web-b' }]);
  const { page, problems } = await openFleetPage(fleet);
  const summary = async (): Promise<Summary> => (await page.evaluate('window.summary()')) as Summary;

  // Refusals first: connect() rejects with the stable codes.
  const refusal = (options: string): Promise<unknown> =>
    page.evaluate(`slip.connect({ coordinator: location.origin + '/coord', connectTimeoutMs: 8000, ${options} }).then((c) => { c.close(); return 'connected'; }, (e) => e.code)`);
  const forged = "ticket: { sessionId: '0123456789abcdef', ticket: btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(120)))), sessionKey: btoa(String.fromCharCode(...new Uint8Array(32))) }";
  assert.equal(await refusal(`origin: 'game', ${forged}`), 'SLIP_ERR_TICKET_FORGED');
  assert.equal(await refusal(`origin: 'no-such-game', ${forged}`), 'SLIP_ERR_UNKNOWN_ORIGIN');

  const opened = (await page.evaluate('window.start({})')) as { sessionId: string; relayId: string; backupId: string | undefined; fecMode: string };
  assert.equal(opened.sessionId, fleet.issued[0], 'the session is the one the backend issued');
  assert.ok(['web-a', 'web-b'].includes(opened.relayId), `connected via ${opened.relayId}`);
  const withBackup = await eventually(async () => ((await summary()).backupId !== undefined ? summary() : undefined), 5000, 'a warm backup');
  assert.notEqual(withBackup.backupId, withBackup.relayId);

  // 60 messages/s for 10 s: every echo arrives.
  await page.evaluate(`window.burst(0, ${RATE * 10}, ${RATE})`);
  await eventually(async () => ((await page.evaluate(`window.echoed(0, ${RATE * 10})`)) === RATE * 10 ? true : undefined), 5000, 'every echo').catch(() => undefined);
  const echoed = (await page.evaluate(`window.echoed(0, ${RATE * 10})`)) as number;
  const steady = await summary();
  console.log(`browser connect: ${echoed}/${RATE * 10} echoes via ${steady.relayId} (backup ${steady.backupId}, FEC ${steady.fecMode})`);
  assert.equal(echoed, RATE * 10, 'every echo arrives');

  // Kill the relay the page uses: it moves to its backup, same connection and session.
  const used = steady.relayId!;
  const backup = steady.backupId!;
  const FROM = 10_000;
  const COUNT = RATE * 4;
  const sending = page.evaluate(`window.burst(${FROM}, ${COUNT}, ${RATE})`);
  await new Promise((r) => setTimeout(r, 1000));
  const killAtMs = (await summary()).nowMs;
  fleet.relays.find((r) => r.id === used)!.proc.kill('SIGKILL');
  await sending;
  await eventually(async () => ((await summary()).relayId === backup ? true : undefined), 5000, `failover to ${backup}`);
  await new Promise((r) => setTimeout(r, 1000));
  const after1 = await summary();
  const arrivals = (await page.evaluate(`window.arrivals(${FROM}, ${COUNT})`)) as number[];
  let gapMs = 0;
  for (let i = 1; i < arrivals.length; i++) if (arrivals[i]! > killAtMs - 100) gapMs = Math.max(gapMs, arrivals[i]! - arrivals[i - 1]!);
  const lastSecond = (await page.evaluate(`window.echoed(${FROM + COUNT - RATE}, ${RATE})`)) as number;
  console.log(`browser failover: ${used} → ${after1.relayId}, echo gap ${gapMs.toFixed(0)} ms (issue's figure: < 1000 ms), ${arrivals.length}/${COUNT} echoed, last second ${lastSecond}/${RATE}, paths ${JSON.stringify(after1.paths.map((p) => `${p.reason}:${p.relayId}`))}`);
  assert.equal(after1.relayId, backup, 'the backup carries the session');
  assert.ok(after1.failovers >= 1, 'counted as a failover');
  assert.ok(after1.paths.some((p) => p.reason === 'failover' && p.relayId === backup), 'a failover path event');
  assert.equal(after1.sessionId, opened.sessionId, 'the same session');
  assert.equal(after1.closed, false);
  assert.equal(fleet.issued.length, 1, 'no new ticket: the backup session was already open');
  assert.equal(lastSecond, RATE, 'after the failover every echo arrives again');
  assert.ok(gapMs < 5000, `the gap (${gapMs} ms) is bounded`);

  // Revoke the session at the coordinator: the relay ends it, the page's connection closes with the reason.
  const revokedAt = performance.now();
  await fleet.backend.revokeSession(opened.sessionId);
  const ended = await eventually(async () => {
    const s = await summary();
    return s.closed ? s : undefined;
  }, 10_000, 'the page session to end after the revocation');
  console.log(`browser revocation: the page's session ended ${(performance.now() - revokedAt).toFixed(0)} ms after DELETE /v1/session (issue's figure: < 1000 ms; polled every 50 ms), reason ${ended.closeReason}`);
  assert.equal(ended.closeReason, 'SLIP_ERR_TICKET_REVOKED');
  assert.deepEqual(problems, []);
});
