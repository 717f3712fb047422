/* global URL, Buffer, performance, setInterval, clearInterval, setTimeout */
// Not in CI (sdk/README.md, 'Figures measured'): 5 Mbit/s of UDP (1200-byte datagrams, 520/s, sent in 60 Hz frames) through
// `slipstream connect` to a loopback fleet, with CPU hogs beside it; drops counted per
// socket from /proc/net/udp (the kernel's per-socket `drops`).
// Usage, after npx tsc: node scripts/measure-connect-buffers.mjs before|after SECONDS HOGS
// (before: --socket-*-buffer-bytes 0, the OS default; after: the defaults). One JSON line.
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
const W = new URL('../dist', import.meta.url).pathname;
const { CoordinatorClient } = await import(`${W}/kit/coordinator-client.js`);
const { CliProcess } = await import(`${W}/test/support/cli-process.js`);
const { announcedRelayYaml, announceRelay, fleetKeys, startCoordinator, startTunnelRelay } = await import(`${W}/test/support/local-fleet.js`);
const { freePort, udpEchoOrigin } = await import(`${W}/test/support/sockets.js`);

const [mode, seconds = '20', hogs = '2'] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'cbm-'));
const keys = fleetKeys();
const origin = await udpEchoOrigin();
const coord = await startCoordinator(dir, keys, origin.port);
const config = join(dir, 'relay.yaml');
writeFileSync(config, announcedRelayYaml(keys, { address: '127.0.0.2', originPort: origin.port }).replace('logLevel: warn', 'logLevel: warn\nsocketReceiveBufferBytes: 4194304\nupstreamReceiveBufferBytes: 4194304'));
const relay = await startTunnelRelay(config);
const beat = await announceRelay(new CoordinatorClient({ baseUrl: coord.url, fleetSecret: keys.fleetSecret }), { relayId: 'relay-a', tunnelAddress: `127.0.0.2:${relay.tunnelPort}`, originRttMs: 1 });
const udpPort = await freePort('udp');
const flags = mode === 'before' ? ['--socket-receive-buffer-bytes', '0', '--socket-send-buffer-bytes', '0'] : [];
const proxy = CliProcess.start(['connect', '--coordinator', coord.url, '--origin', 'game', '--listen', `udp:127.0.0.1:${udpPort}`, '--api-key', keys.apiKey, '--bind', '127.0.0.1', '--cache', join(dir, 'c.json'), '--status-interval-ms', '60000', ...flags]);
await proxy.waitFor(/^buffers: .*\n/m, 'stdout', 15000);
const buffersLine = /^buffers: .*$/m.exec(proxy.stdout)[0];

function socketDrops(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) { try { const m = /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`)); if (m) inodes.add(m[1]); } catch { /* the fd closed meanwhile */ } }
  const out = {};
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/); if (f.length < 13 || !inodes.has(f[9])) continue;
    const port = parseInt(f[1].split(':')[1], 16);
    out[port === udpPort ? 'listen' : 'tunnel'] = Number(f[12]);
  }
  return out;
}
const hogProcs = [];
for (let i = 0; i < Number(hogs); i++) hogProcs.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
const game = dgram.createSocket('udp4');
await new Promise((r) => game.bind(0, '127.0.0.1', r));
let received = 0; game.on('message', () => received++);
const payload = Buffer.alloc(1200, 7);
const before = socketDrops(proxy.child.pid);
const t0 = performance.now(); let sent = 0; const rate = 520;
const loads = [];
await new Promise((resolve) => {
  const tick = setInterval(() => {
    const el = (performance.now() - t0) / 1000;
    if (el >= Number(seconds)) { clearInterval(tick); resolve(); return; }
    const due = Math.floor(el * rate);
    while (sent < due) { game.send(payload, udpPort, '127.0.0.1'); sent++; }
  }, 1000 / 60);
  const lt = setInterval(() => loads.push(loadavg()[0]), 5000); setTimeout(() => clearInterval(lt), Number(seconds) * 1000);
});
await new Promise((r) => setTimeout(r, 1500));
const after = socketDrops(proxy.child.pid);
for (const h of hogProcs) h.kill('SIGTERM');
const listenDrops = (after.listen ?? 0) - (before.listen ?? 0);
const tunnelDrops = (after.tunnel ?? 0) - (before.tunnel ?? 0);
console.log(JSON.stringify({ mode, sent, received, listenDrops, listenLossPct: +(100 * listenDrops / sent).toFixed(3), tunnelDrops, endToEndLossPct: +(100 * (sent - received) / sent).toFixed(3), load1: Math.max(...loads, loadavg()[0]).toFixed(2), buffersLine }));
clearInterval(beat); game.close(); origin.socket.close();
proxy.kill('SIGTERM'); relay.proc.kill('SIGTERM'); coord.proc.kill('SIGTERM');
await Promise.all([proxy.exited, relay.proc.exited, coord.proc.exited]);
