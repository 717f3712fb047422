/**
 * The baseline `slipstream bench relay` measures the relay against: the smallest
 * useful Node forwarder, a per-client upstream socket connected to the origin for UDP
 * (as anyone would write it) and a pipe for TCP,
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
/** Per client flow: its socket connected to the origin, and what arrived before the connect completed. */
const upstreams = new Map<string, { socket: dgram.Socket; pending: Buffer[] | undefined }>();
listen.on('message', (msg, from) => {
  const key = `${from.address}:${from.port}`;
  let up = upstreams.get(key);
  if (!up) {
    // One socket per client flow, connected to the origin: the kernel keeps the
    // destination, so a send is a plain send() with no address to look up or convert.
    // dgram refuses a send without an address until the connect completes, so the
    // first datagrams wait for it.
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: RECEIVE_BUFFER_BYTES });
    const flow = { socket, pending: [] as Buffer[] | undefined };
    socket.connect(originPort, '127.0.0.1', () => {
      for (const queued of flow.pending!) socket.send(queued);
      flow.pending = undefined;
    });
    const clientPort = from.port;
    const clientAddress = from.address;
    socket.on('message', (reply) => listen.send(reply, clientPort, clientAddress));
    upstreams.set(key, flow);
    up = flow;
  }
  if (up.pending) up.pending.push(msg);
  else up.socket.send(msg);
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
