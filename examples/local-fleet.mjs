// One command for the examples: a local fleet on 127.0.0.1 — a coordinator and two
// relays (real `slipstream` processes, fresh keys), the example game server, then the
// example Node player through the tunnel, and a plain UDP client through a relay's L4
// rule with PROXY protocol v2 (the game server prints the player's real address).
//
//   npm run example                     # build, run it all for 5 s of play, stop
//   node examples/local-fleet.mjs [--seconds 5] [--keep-running]
//
// --keep-running leaves the fleet up after the run (until Ctrl-C) and prints the
// coordinator URL and API key for `node examples/node-player.mjs` and for the browser
// page's server (`node examples/browser/serve.mjs`; each relay has a browser entry). Exits non-zero when
// the player's echoes or the L4 echoes did not come back.
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, 'keep-running': { type: 'boolean', default: false } } });
const CLI = fileURLToPath(new URL('../dist/cli/slipstream.js', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));
/** Longest wait for any one step (a process to start, the fleet to be healthy), ms. */
const STEP_TIMEOUT_MS = 20_000;

const children = [];
const dir = mkdtempSync(join(tmpdir(), 'slipstream-example-'));
let stopping = false;

/** Starts `node args…`, keeps its output; `lines(fn)` calls fn on each output line until it returns a value. */
function start(name, args, { show = false } = {}) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const waiters = [];
  let buffered = '';
  const onData = (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (show) console.log(`[${name}] ${line}`);
      for (const w of [...waiters]) {
        const v = w.fn(line);
        if (v !== undefined) {
          waiters.splice(waiters.indexOf(w), 1);
          w.ok(v);
        }
      }
    }
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', onData);
  const exited = new Promise((ok) => child.once('exit', (code) => ok(code)));
  exited.then((code) => {
    if (!stopping && code !== 0 && name !== 'player') console.error(`${name} exited with ${code}`);
  });
  const line = (fn, what) =>
    new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`${name}: no ${what} within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
      waiters.push({ fn, ok: (v) => (clearTimeout(timer), ok(v)) });
    });
  return { child, line, exited };
}

function stop() {
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]]) {
  process.once(signal, () => {
    stop();
    process.exit(code);
  });
}

async function eventually(probe, what) {
  const deadline = performance.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${STEP_TIMEOUT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

try {
  // Keys: the coordinator signs tickets (Ed25519 seed), relays verify them with its public key.
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d, 'base64url').toString('base64');
  const publicKey = Buffer.from(jwk.x, 'base64url').toString('base64');
  const sealKey = randomBytes(32).toString('base64');
  const fleetSecret = randomBytes(24).toString('base64');
  const apiKey = randomBytes(24).toString('base64');

  const game = start('game-server', [join(HERE, 'game-server.mjs'), '--port', '0', '--proxy-port', '0'], { show: true });
  const ports = await game.line((l) => (l.includes('"listening"') ? JSON.parse(l) : undefined), 'listening line');

  const coordinatorYaml = join(dir, 'coordinator.yaml');
  writeFileSync(
    coordinatorYaml,
    ['listen: 127.0.0.1:0', 'leaseMs: 1500', 'logLevel: warn', 'origins:', `  - { name: game, address: 127.0.0.1:${ports.port} }`, 'keys:', `  ticketSigningSeed: ${seed}`, `  sealKey: ${sealKey}`, `  fleetSecret: ${fleetSecret}`, `  apiKeys: [${apiKey}]`].join('\n'),
  );
  const coordinator = start('coordinator', [CLI, 'coordinator', '--config', coordinatorYaml]);
  const url = await coordinator.line((l) => /listening on (http:\/\/[0-9.:]+)/.exec(l)?.[1], 'listening line');
  console.log(`coordinator ${url} (dashboard there)`);

  let l4Port;
  const freeUdpPort = async () => {
    const s = createSocket('udp4');
    await new Promise((ok) => s.bind(0, '127.0.0.1', ok));
    const port = s.address().port;
    await new Promise((ok) => s.close(ok));
    return port;
  };
  for (const [id, lat, lon] of [['fra-1', 50.1, 8.7], ['ams-1', 52.4, 4.9]]) {
    const yaml = join(dir, `${id}.yaml`);
    const rules = id === 'fra-1' ? ['rules:', `  - { name: game-udp, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:${ports.proxyPort}], proxyProtocol: v2, healthCheck: { mode: none } }`] : [];
    writeFileSync(
      yaml,
      [
        'upstreamBindAddress: 127.0.0.1',
        'metrics: { listen: "off" }',
        'drain: { timeoutMs: 200 }', // a quick stop; production relays drain longer (relay/README.md)
        ...rules,
        'tunnel:',
        '  listen: 127.0.0.1:0',
        `  ticketPublicKey: ${publicKey}`,
        `  sealKey: ${sealKey}`,
        `  origins: { game: 127.0.0.1:${ports.port} }`,
        `  coordinatorUrl: ${url}`,
        `  coordinatorFleetSecret: ${fleetSecret}`,
        // The browser entry (WebRTC): signaling over plain HTTP on loopback, any page origin (development only).
        '  webrtc:',
        '    listen: 127.0.0.1:0',
        `    udpMuxPort: ${await freeUdpPort()}`,
        "    allowOrigins: ['*']",
        'fleet:',
        `  relayId: ${id}`,
        '  region: local',
        `  latitude: ${lat}`,
        `  longitude: ${lon}`,
        '  heartbeatIntervalMs: 300',
        '  probeIntervalMs: 100',
        '  reportIntervalMs: 500',
        '  meshRefreshMs: 500',
      ].join('\n'),
    );
    const relay = start(id, [CLI, 'relay', '--config', yaml, '--log-level', 'info']);
    if (id === 'fra-1') l4Port = await relay.line((l) => (/"rule":"game-udp"/.test(l) ? /"port":(\d+)/.exec(l)?.[1] : undefined), 'game-udp listening line');
  }
  console.log(`relays fra-1, ams-1; fra-1's L4 rule game-udp on 127.0.0.1:${l4Port} (PROXY v2 to the game server)`);
  await eventually(async () => {
    const f = await (await fetch(new URL('/v1/fleet', url))).json();
    return f.relays.length === 2 && f.relays.every((r) => r.health === 'healthy' && r.origins.some((o) => o.origin === 'game')) ? true : undefined;
  }, 'both relays healthy with figures to the game server');

  // The SDK player, through the tunnel.
  const player = start('player', [join(HERE, 'node-player.mjs'), '--coordinator', url, '--api-key', apiKey, '--seconds', values.seconds], { show: true });
  const summary = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('player: no summary')), Number(values.seconds) * 1000 + STEP_TIMEOUT_MS);
    player.line((l) => (l.includes('"summary"') ? JSON.parse(l) : undefined), 'summary').then((v) => (clearTimeout(timer), ok(v)), fail);
  });

  // A client with no SDK, through the L4 rule: the game server sees its real address.
  const plain = createSocket('udp4');
  let l4Echoes = 0;
  plain.on('message', () => l4Echoes++);
  await new Promise((ok) => plain.bind(0, '127.0.0.1', ok));
  for (let i = 0; i < 5; i++) plain.send(Buffer.from(`l4 hello ${i}`), l4Port, '127.0.0.1');
  await eventually(async () => (l4Echoes === 5 ? true : undefined), 'the L4 echoes');
  console.log(`L4 client 127.0.0.1:${plain.address().port}: ${l4Echoes}/5 echoes`);
  plain.close();

  const ok = summary.echoed >= summary.sent * 0.95;
  console.log(`${ok ? 'OK' : 'FAILED'}: the player got ${summary.echoed}/${summary.sent} echoes through ${summary.relay}`);
  if (values['keep-running']) {
    console.log(`fleet up; try: node examples/node-player.mjs --coordinator ${url} --api-key ${apiKey}`);
    console.log(`browser: node examples/browser/serve.mjs --coordinator ${url} --api-key ${apiKey}, then open http://127.0.0.1:8080/\nCtrl-C stops it.`);
    await new Promise(() => {});
  }
  stop();
  process.exitCode = ok ? 0 : 1;
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  stop();
  process.exitCode = 1;
}
