/**
 * `slipstream connect` sizes its UDP sockets' kernel buffers (the tunnel socket and each
 * `udp:` listen socket) as asked, and says what the kernel granted: a `buffers:` line at
 * start, and one warning when the kernel capped a request at `net.core.rmem_max` /
 * `wmem_max`. Behaviour only, no timing: real processes on loopback (a coordinator, one
 * relay, connect), the caps read from /proc. Only processes started here are stopped, by PID.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient } from '../kit/coordinator-client.js';
import { connect } from '../sdk/src/connect.js';
import { SOCKET_BUFFER_BYTES_DEFAULT } from '../sdk/src/socket-buffers.js';
import { CliProcess } from './support/cli-process.js';
import { announcedRelayYaml, announceRelay, fleetKeys, startCoordinator, startTunnelRelay } from './support/local-fleet.js';
import { runCli } from './support/run-cli.js';
import { freePort, udpEchoOrigin, type UdpEchoOrigin } from './support/sockets.js';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-e2e-connect-buffers-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const keys = fleetKeys();
const onLinux = existsSync('/proc/sys/net/core/rmem_max');
const sysctl = (name: string): number => Number(readFileSync(`/proc/sys/net/core/${name}`, 'utf8').trim());

/**
 * What the kernel grants for `asked` bytes, in the units asked: capped at `*mem_max`; for 0
 * its default `*mem_default`, which Linux counts doubled (as it doubles a size set), so half.
 */
function expected(asked: number, kind: 'r' | 'w'): number {
  return asked === 0 ? sysctl(`${kind}mem_default`) / 2 : Math.min(asked, sysctl(`${kind}mem_max`));
}

describe('slipstream connect socket buffers', { skip: onLinux ? false : 'needs Linux /proc/sys/net/core' }, () => {
  let coordinatorUrl = '';
  let origin: UdpEchoOrigin;
  let relay: CliProcess | undefined;
  let beat: NodeJS.Timeout | undefined;

  before(async () => {
    origin = await udpEchoOrigin();
    coordinatorUrl = (await startCoordinator(dir, keys, origin.port)).url;
    const config = join(dir, 'relay.yaml');
    writeFileSync(config, announcedRelayYaml(keys, { address: '127.0.0.2', originPort: origin.port }));
    const started = await startTunnelRelay(config);
    relay = started.proc;
    beat = await announceRelay(new CoordinatorClient({ baseUrl: coordinatorUrl, fleetSecret: keys.fleetSecret }), { relayId: 'relay-a', tunnelAddress: `127.0.0.2:${started.tunnelPort}`, originRttMs: 1 });
  });

  after(() => {
    clearInterval(beat);
    origin?.socket.close();
  });

  /** Starts connect with `flags`, returns its `buffers:` line's sizes per socket and its stderr. */
  async function startedBuffers(flags: string[]): Promise<{ sockets: Map<string, [number, number]>; asked: [number, number]; stderr: string }> {
    const udpPort = await freePort('udp');
    const proxy = CliProcess.start(['connect', '--coordinator', coordinatorUrl, '--origin', 'game', '--listen', `udp:127.0.0.1:${udpPort}`, '--api-key', keys.apiKey, '--bind', '127.0.0.1', '--cache', join(dir, `cache-${udpPort}.json`), ...flags]);
    try {
      const line = (await proxy.waitFor(/^buffers: (.*)\n/m, 'stdout', 15_000))[1]!;
      const sockets = new Map<string, [number, number]>();
      for (const m of line.matchAll(/(tunnel|udp:\S+) rcvbuf (\d+) sndbuf (\d+) bytes/g)) sockets.set(m[1]!.startsWith('udp:') ? 'listen' : 'tunnel', [Number(m[2]), Number(m[3])]);
      const asked = /\(asked rcvbuf (\d+) sndbuf (\d+) bytes\)/.exec(line);
      assert.ok(asked, line);
      return { sockets, asked: [Number(asked[1]), Number(asked[2])], stderr: proxy.stderr };
    } finally {
      proxy.kill('SIGTERM');
      await proxy.exited;
    }
  }

  test('default: 4 MiB asked for the tunnel and the listen socket, the kernel cap granted when lower, and a warning only then', async () => {
    const { sockets, asked, stderr } = await startedBuffers([]);
    assert.deepEqual(asked, [SOCKET_BUFFER_BYTES_DEFAULT, SOCKET_BUFFER_BYTES_DEFAULT]);
    const want: [number, number] = [expected(SOCKET_BUFFER_BYTES_DEFAULT, 'r'), expected(SOCKET_BUFFER_BYTES_DEFAULT, 'w')];
    assert.deepEqual(sockets.get('tunnel'), want);
    assert.deepEqual(sockets.get('listen'), want);
    const capped = want[0] < SOCKET_BUFFER_BYTES_DEFAULT || want[1] < SOCKET_BUFFER_BYTES_DEFAULT;
    assert.equal(/warning: the kernel capped/.test(stderr), capped, stderr);
  });

  test('asked above the kernel cap: the cap is granted and reported, with one warning naming the sysctl', async () => {
    const receive = Math.min(sysctl('rmem_max') * 2, 1 << 30);
    const send = Math.min(sysctl('wmem_max') * 2, 1 << 30);
    const { sockets, stderr } = await startedBuffers(['--socket-receive-buffer-bytes', String(receive), '--socket-send-buffer-bytes', String(send)]);
    const want: [number, number] = [sysctl('rmem_max'), sysctl('wmem_max')];
    assert.deepEqual(sockets.get('tunnel'), want);
    assert.deepEqual(sockets.get('listen'), want);
    assert.equal(stderr.match(/warning: the kernel capped/g)?.length, 1, stderr);
    assert.match(stderr, /net\.core\.rmem_max/);
  });

  test('a size below the cap is granted exactly; 0 keeps the OS default; neither warns', async () => {
    const exact = await startedBuffers(['--socket-receive-buffer-bytes', '65536', '--socket-send-buffer-bytes', '0']);
    const want: [number, number] = [expected(65_536, 'r'), expected(0, 'w')];
    assert.deepEqual(exact.sockets.get('tunnel'), want);
    assert.deepEqual(exact.sockets.get('listen'), want);
    assert.doesNotMatch(exact.stderr, /warning/);
  });

  test('out of range: the flag is a usage error (exit 2), the API option a TypeError; connect() reports what the kernel granted', async () => {
    const port = await freePort('udp');
    for (const bad of ['-1', String(2 ** 30 + 1), '1.5']) {
      const result = await runCli(['connect', '--coordinator', coordinatorUrl, '--origin', 'game', '--listen', `udp:127.0.0.1:${port}`, '--api-key', keys.apiKey, '--socket-receive-buffer-bytes', bad], 20_000);
      assert.equal(result.code, 2, `${bad}: ${result.stderr}`);
      assert.match(result.stderr, /--socket-receive-buffer-bytes/);
    }
    const ticketProvider = (): ReturnType<CoordinatorClient['issueSession']> => new CoordinatorClient({ baseUrl: coordinatorUrl, apiKey: keys.apiKey }).issueSession({ origin: 'game' });
    await assert.rejects(connect({ coordinator: coordinatorUrl, origin: 'game', ticketProvider, socketSendBufferBytes: -1 }), TypeError);
    const conn = await connect({ coordinator: coordinatorUrl, origin: 'game', ticketProvider, bindAddress: '127.0.0.1', socketReceiveBufferBytes: 131_072, socketSendBufferBytes: 0 });
    try {
      assert.deepEqual(conn.socketBuffers(), { asked: { receiveBytes: 131_072, sendBytes: 0 }, granted: { receiveBytes: expected(131_072, 'r'), sendBytes: expected(0, 'w') } });
    } finally {
      conn.close();
    }
  });

  after(async () => {
    relay?.kill('SIGTERM');
    await relay?.exited;
  });
});
