/**
 * The baseline `slipstream bench relay` measures the relay against: the smallest
 * useful Node forwarder, a per-client upstream socket for UDP and a pipe for TCP,
 * with no limits, no metrics and no checks. Benchmark-only code.
 *
 * Usage: node dist/bench/relay-baseline.js <udpListenPort> <tcpListenPort> <udpOriginPort> <tcpOriginPort>
 * (all on 127.0.0.1; prints `ready <udpPort> <tcpPort>` once bound).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

/** This file, for spawning it (bench/ is compiled only through imports). */
export const BASELINE_SCRIPT = fileURLToPath(import.meta.url);

/** The forwarder: everything below runs only when this file is the process's entry point. */
function main(): void {

const [udpPort, tcpPort, originPort, tcpOriginPort] = process.argv.slice(2).map(Number) as [number, number, number, number];
// The same kernel receive buffers the bench gives the relay (socketReceiveBufferBytes
// and upstreamReceiveBufferBytes), so the comparison is of code, not of buffers.
const RECEIVE_BUFFER_BYTES = 8 << 20;
const listen = dgram.createSocket({ type: 'udp4', recvBufferSize: RECEIVE_BUFFER_BYTES });
const upstreams = new Map<string, dgram.Socket>();
listen.on('message', (msg, from) => {
  const key = `${from.address}:${from.port}`;
  let up = upstreams.get(key);
  if (!up) {
    up = dgram.createSocket({ type: 'udp4', recvBufferSize: RECEIVE_BUFFER_BYTES });
    up.on('message', (reply) => listen.send(reply, from.port, from.address));
    upstreams.set(key, up);
  }
  up.send(msg, originPort, '127.0.0.1');
});
const server = net.createServer((client) => {
  const up = net.connect(tcpOriginPort, '127.0.0.1');
  client.pipe(up).pipe(client);
  client.on('error', () => up.destroy());
  up.on('error', () => client.destroy());
});
listen.bind(udpPort, '127.0.0.1', () => server.listen(tcpPort, '127.0.0.1', () => process.stdout.write(`ready ${listen.address().port} ${(server.address() as net.AddressInfo).port}\n`)));
}

if (process.argv[1] === BASELINE_SCRIPT) main();
