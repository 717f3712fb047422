/**
 * `npm run example` as a developer runs it (the build is this run's dist/): the
 * one-command local fleet — a coordinator, two relays, the example game server, the SDK
 * player through the tunnel and a plain client through an L4 rule with PROXY v2 —
 * exits 0, the player's echoes come back, and the game server names the plain client by
 * its real address, read with `slipstream/origin`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('examples/local-fleet.mjs: the SDK player and an L4 client with PROXY v2 both play through a local fleet', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [join(REPO_ROOT, 'examples', 'local-fleet.mjs'), '--seconds', '2'], { cwd: REPO_ROOT, timeout: 90_000 });
  const summaryLine = stdout.split('\n').find((l) => l.includes('"event":"summary"'));
  assert.ok(summaryLine, stdout);
  const summary = JSON.parse(summaryLine.slice(summaryLine.indexOf('{'))) as { sent: number; echoed: number; relay: string };
  assert.equal(summary.sent, 120);
  assert.ok(summary.echoed >= 114, `echoes ${summary.echoed}/120`);
  assert.match(summary.relay, /^(fra-1|ams-1)$/);
  const l4 = /L4 client 127\.0\.0\.1:(\d+): 5\/5 echoes/.exec(stdout);
  assert.ok(l4, stdout);
  assert.match(stdout, new RegExp(`"via":"proxy-v2","player":"127\\.0\\.0\\.1:${l4[1]}"`), 'the game server saw the L4 client by its own address, not the relay');
  assert.match(stdout, /^OK: /m);
});
