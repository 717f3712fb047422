// A UDP game server behind Slipstream relays: it echoes every datagram to its sender
// and learns each player's real address from the PROXY protocol v2 / SPP header a relay
// puts in front of each datagram (`slipstream/origin`).
//
//   node examples/game-server.mjs [--port 27015] [--proxy-port 27016] [--host 127.0.0.1]
//
// Two ports, because whether a datagram carries a header is the relay rule's setting,
// not something to guess from the bytes (a game payload may start with any byte):
// - `--proxy-port`: traffic from relay L4 rules with `proxyProtocol: v2` or `spp`, or
//   from a tunnel with `tunnel.proxyProtocol` (relay/README.md, "What the origin sees"),
//   which also gives the ticket's player id. A datagram without a valid header is
//   dropped: only relays send here.
// - `--port`: plain traffic (a tunnel without `tunnel.proxyProtocol`, as in
//   local-fleet.mjs): the player shows up as the relay's address.
// Prints one JSON line per new player and a count every 5 s; SIGINT/SIGTERM stop it.
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { parsePlayerDatagram } from 'slipstream/origin';

const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '27015' }, 'proxy-port': { type: 'string', default: '27016' } } });
const players = new Map();
let echoed = 0;

function seen(key, info) {
  if (players.has(key)) return;
  players.set(key, info);
  console.log(JSON.stringify({ event: 'player', ...info }));
}

const plain = createSocket('udp4');
plain.on('message', (msg, rinfo) => {
  seen(`tunnel ${rinfo.address}:${rinfo.port}`, { via: 'tunnel', relay: `${rinfo.address}:${rinfo.port}` });
  plain.send(msg, rinfo.port, rinfo.address);
  echoed++;
});

const proxied = createSocket('udp4');
proxied.on('message', (msg, rinfo) => {
  const d = parsePlayerDatagram(msg);
  if (!d.ok) return; // not from a relay (or a broken header), or the relay's own health check: drop
  // The address is undefined when the relay did not know it (a PROXY v2 UNSPEC header); the player id comes from the ticket.
  const player = d.address === undefined ? 'unknown' : `${d.address}:${d.port}`;
  seen(`proxied ${player} ${d.playerId ?? ''} ${rinfo.address}:${rinfo.port}`, { via: d.format, player, ...(d.playerId !== undefined ? { playerId: d.playerId } : {}), relay: `${rinfo.address}:${rinfo.port}` });
  // Replies go back to the relay's socket as plain payload (the relay adds nothing on the way back).
  proxied.send(d.payload, rinfo.port, rinfo.address);
  echoed++;
});

await Promise.all([
  new Promise((ok) => plain.bind(Number(values.port), values.host, ok)),
  new Promise((ok) => proxied.bind(Number(values['proxy-port']), values.host, ok)),
]);
console.log(JSON.stringify({ event: 'listening', port: plain.address().port, proxyPort: proxied.address().port }));
const ticker = setInterval(() => console.log(JSON.stringify({ event: 'stats', players: players.size, echoed })), 5000);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    clearInterval(ticker);
    plain.close();
    proxied.close();
  });
}
