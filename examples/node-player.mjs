// A Node game client on the SDK (`slipstream/sdk`): gets a ticket, connects through the
// best relay, sends `--rate` datagrams/s for `--seconds` and counts the echoes.
//
//   node examples/node-player.mjs --coordinator http://127.0.0.1:7400 --api-key KEY [--origin game] [--seconds 5] [--rate 60]
//
// In a real game the API key stays on the game's backend: the backend calls
// `POST /v1/session` and hands the answer to the client, which passes it as
// `ticketProvider`'s result unchanged. Here the player asks the coordinator itself.
// Prints JSON lines: `path` changes, then one `summary`.
import { parseArgs } from 'node:util';
import { connect, SlipstreamError } from 'slipstream/sdk';

const { values } = parseArgs({
  options: {
    coordinator: { type: 'string' },
    'api-key': { type: 'string' },
    origin: { type: 'string', default: 'game' },
    seconds: { type: 'string', default: '5' },
    rate: { type: 'string', default: '60' },
  },
});
if (!values.coordinator || !values['api-key']) {
  console.error('usage: node examples/node-player.mjs --coordinator URL --api-key KEY [--origin game] [--seconds 5] [--rate 60]');
  process.exit(2);
}

async function ticketProvider() {
  const res = await fetch(new URL('/v1/session', values.coordinator), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${values['api-key']}` },
    body: JSON.stringify({ origin: values.origin }),
  });
  if (res.status !== 201) throw new Error(`POST /v1/session: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

let conn;
try {
  conn = await connect({ coordinator: values.coordinator, origin: values.origin, ticketProvider });
} catch (e) {
  console.error(e instanceof SlipstreamError ? `${e.code}: ${e.message}` : e);
  process.exit(1);
}
const sentAt = new Map();
const rttsMs = [];
conn.on('message', (bytes) => {
  const seq = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  const at = sentAt.get(seq);
  if (at === undefined) return;
  sentAt.delete(seq);
  rttsMs.push(performance.now() - at);
});
conn.on('path', (p) => console.log(JSON.stringify({ event: 'path', relay: p.relayId, reason: p.reason, rttMs: p.rttMs, fecMode: p.fecMode })));
conn.on('error', (e) => console.error(`${e.code}: ${e.message}`));

const total = Math.round(Number(values.seconds) * Number(values.rate));
const periodMs = 1000 / Number(values.rate);
const start = performance.now();
for (let seq = 0; seq < total; seq++) {
  const payload = new Uint8Array(100);
  new DataView(payload.buffer).setUint32(0, seq);
  sentAt.set(seq, performance.now());
  conn.send(payload);
  const wait = start + (seq + 1) * periodMs - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
await new Promise((r) => setTimeout(r, 500)); // the last echoes
rttsMs.sort((a, b) => a - b);
const stats = conn.stats();
console.log(JSON.stringify({ event: 'summary', sent: total, echoed: rttsMs.length, rttMsP50: rttsMs[Math.floor(rttsMs.length / 2)] ?? null, relay: stats.relayId, backup: stats.backupId, switches: stats.switches, failovers: stats.failovers }));
conn.close();
