/**
 * The tunnel session's owner among relay workers (relay/src/worker-steering.ts), and the
 * classic BPF program a native addon would attach to the reuseport group: run here by a
 * small cBPF interpreter (the instructions it uses), it picks the same worker as the
 * userspace hand-off for every tunnel packet and leaves other datagrams to the kernel's hash;
 * and which Node versions have SO_REUSEPORT (workers need it).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PacketType } from '../../proto/src/header.js';
import { buildPacket } from '../../proto/src/wire.js';
import { sessionOwner, steeringProgram, type CbpfInstruction } from '../src/worker-steering.js';
import { reusePortSupported } from '../src/workers.js';

/** Runs `program` on `packet` (the UDP payload) as the kernel would; returns the `ret` value. */
function runCbpf(program: readonly CbpfInstruction[], packet: Uint8Array): number {
  let a = 0;
  for (let pc = 0; pc < program.length; pc++) {
    const { code, jt, jf, k } = program[pc]!;
    switch (code) {
      case 0x80: // ld len
        a = packet.length;
        break;
      case 0x30: // ldb [k]
        if (k >= packet.length) return 0;
        a = packet[k]!;
        break;
      case 0x20: // ld [k], big-endian
        if (k + 4 > packet.length) return 0;
        a = ((packet[k]! << 24) | (packet[k + 1]! << 16) | (packet[k + 2]! << 8) | packet[k + 3]!) >>> 0;
        break;
      case 0x35: // jge #k
        pc += a >= k ? jt : jf;
        break;
      case 0x15: // jeq #k
        pc += a === k ? jt : jf;
        break;
      case 0x94: // mod #k
        a = a % k;
        break;
      case 0x16: // ret a
        return a;
      case 0x06: // ret #k
        return k;
      default:
        throw new Error(`instruction 0x${code.toString(16)} not interpreted`);
    }
  }
  throw new Error('the program fell off its end');
}

describe('relay worker steering', () => {
  test('the owner is the session id modulo the workers; the cBPF program agrees, and sends non-tunnel datagrams to the kernel hash', () => {
    for (const workers of [2, 3, 4, 7]) {
      const program = steeringProgram(workers);
      const seen = new Set<number>();
      for (let i = 0; i < 200; i++) {
        const id = randomBytes(8);
        const packet = buildPacket(PacketType.Data, id.readUInt32BE(0), id.readUInt32BE(4), i, randomBytes(i % 50));
        const owner = sessionOwner(packet, workers);
        assert.equal(owner, id.readUInt32BE(4) % workers);
        assert.equal(runCbpf(program, packet), owner);
        seen.add(owner!);
      }
      assert.equal(seen.size, workers, `random session ids reach every one of ${workers} workers`);
      for (const other of [Buffer.alloc(0), Buffer.from('not a tunnel packet, long enough to read'), Buffer.alloc(12, 0xa5)]) {
        assert.equal(sessionOwner(other, workers), undefined);
        assert.equal(runCbpf(program, other), 0xffffffff);
      }
    }
  });

  test('workers need SO_REUSEPORT from Node: 22.12+, 23.1+, 24+', () => {
    for (const v of ['22.12.0', '22.20.1', '23.1.0', '24.0.0', '25.2.1']) assert.equal(reusePortSupported(v), true, v);
    for (const v of ['22.11.0', '23.0.0', '20.18.0']) assert.equal(reusePortSupported(v), false, v);
  });
});
