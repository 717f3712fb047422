/**
 * A relay config for the browser entry's end-to-end tests, apart from webrtc-client.ts so
 * a test that only starts such a relay does not load node-datachannel.
 */
import { writeFileSync } from 'node:fs';
import { freePort } from './sockets.js';

/**
 * Writes a relay config with a tunnel serving origin `game` on 127.0.0.1:`originPort`
 * and a WebRTC entry on loopback (signaling on an ephemeral port, the UDP mux on a free
 * one); `top` lines go first (top-level keys), `webrtc` lines into `tunnel.webrtc`.
 */
export async function writeWebrtcRelayConfig(path: string, keys: { readonly ticketPublicKey: Uint8Array; readonly sealKey: Uint8Array }, originPort: number, extra: { readonly top?: readonly string[]; readonly webrtc?: readonly string[] } = {}): Promise<void> {
  writeFileSync(
    path,
    [
      'upstreamBindAddress: 127.0.0.1',
      ...(extra.top ?? []),
      'tunnel:',
      '  listen: 127.0.0.1:0',
      `  ticketPublicKey: ${Buffer.from(keys.ticketPublicKey).toString('base64')}`,
      `  sealKey: ${Buffer.from(keys.sealKey).toString('base64')}`,
      `  origins: { game: 127.0.0.1:${originPort} }`,
      '  webrtc:',
      '    listen: 127.0.0.1:0',
      `    udpMuxPort: ${await freePort('udp')}`,
      ...(extra.webrtc ?? []).map((line) => `    ${line}`),
    ].join('\n'),
  );
}
