/**
 * deploy/systemd: the units are checked by `systemd-analyze verify` and, more to the
 * point, their start/reload/stop commands are run for real against the relay and the
 * coordinator. The test parses the unit files, substitutes only the install paths
 * (/opt/slipstream/current → this checkout, /etc/slipstream/*.yaml → a temp config,
 * /usr/bin/node → this node) and runs what systemd would run:
 *   ExecStartPre/ExecStart as the process, each ExecReload line in order with $MAINPID,
 *   KillSignal for `systemctl stop`.
 * and checks that SIGHUP reloads without dropping a live UDP flow and that SIGTERM drains
 * and exits 0 (which Restart=on-failure then leaves alone).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DRAIN_TIMEOUT_MS_DEFAULT } from '../relay/src/core/constants.js';
import { JsonLogProcess } from './support/json-lines.js';
import { freePort, udpClient, udpSocket } from './support/sockets.js';
import { until } from './support/wait.js';

/** The checkout (dist/test/… → ../..): what /opt/slipstream/current is on a host. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const UNITS = join(ROOT, 'deploy', 'systemd');
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-deploy-units-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A systemd unit file: section → key → every value in file order. */
type Unit = Map<string, Map<string, string[]>>;

/** Parses the systemd unit syntax used here: sections, `Key=value` (repeatable), `#`/`;` comments, `\` continuations. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section && eq > 0, `not a unit line: ${line}`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    section.set(key, [...(section.get(key) ?? []), value]);
  }
  return unit;
}

function loadUnit(name: string): Unit {
  return parseUnit(readFileSync(join(UNITS, name), 'utf8'));
}

function values(unit: Unit, key: string, section = 'Service'): string[] {
  return unit.get(section)?.get(key) ?? [];
}

function one(unit: Unit, key: string, section = 'Service'): string {
  const all = values(unit, key, section);
  assert.equal(all.length, 1, `${section}.${key} appears ${all.length} times`);
  return all[0]!;
}

/** systemd's time span syntax for TimeoutStopSec ("60", "90s", "2min", "1min 30s") → ms. */
function timeSpanMs(text: string): number {
  const units: Record<string, number> = { '': 1000, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000, ms: 1 };
  let total = 0;
  for (const part of text.trim().split(/\s+/)) {
    const m = /^(\d+)([a-z]*)$/.exec(part);
    assert.ok(m && units[m[2]!] !== undefined, `time span '${text}'`);
    total += Number(m[1]) * units[m[2]!]!;
  }
  return total;
}

/** A command line from the unit with the host paths mapped onto this checkout. */
function localCommand(line: string, config: string, extra: Record<string, string> = {}): string[] {
  // A leading '-' (ignore failure) or '@' would change semantics; the units use neither.
  assert.ok(!/^[-@:+!]/.test(line), `unexpected exec prefix in '${line}'`);
  return line.split(/\s+/).map((word) => {
    if (word === '/usr/bin/node') return process.execPath;
    if (word in extra) return extra[word]!;
    return word.replace('/opt/slipstream/current/', ROOT).replace(/^\/etc\/slipstream\/(relay|coordinator)\.yaml$/, config);
  });
}

/** A started process and its JSON log lines, killed by the `after` hook if still running. */
class Proc extends JsonLogProcess {
  constructor(child: ChildProcess) {
    super(child);
    children.add(child);
  }
}

/** Runs one unit command line to completion (as systemd runs ExecStartPre/ExecReload). */
function runToEnd(argv: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('deploy/systemd units', () => {
  test('systemd-analyze verify passes in a root laid out as the installer leaves a host', () => {
    // verify checks that every Exec* binary exists and is executable. Rather than lean on
    // wherever node happens to live on this machine, build a root with exactly what the
    // Ansible role and cloud-init put on a VPS: /usr/bin/node (Debian's or NodeSource's
    // package), /bin/kill (procps), the units in /etc/systemd/system, and systemd's own
    // units (targets the [Unit]/[Install] sections name) copied from this machine.
    // User=slipstream is not checked by verify (it is resolved at start); the signal
    // tests below run the same command lines for real.
    const root = join(dir, 'root');
    mkdirSync(join(root, 'usr/bin'), { recursive: true });
    mkdirSync(join(root, 'bin'), { recursive: true });
    mkdirSync(join(root, 'etc/systemd/system'), { recursive: true });
    mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
    cpSync('/usr/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(root, 'usr/bin/node'), `#!/bin/sh\nexec ${process.execPath} "$@"\n`, { mode: 0o755 });
    writeFileSync(join(root, 'bin/kill'), '#!/bin/sh\nexec /bin/kill "$@"\n', { mode: 0o755 });
    const units = ['slipstream-relay.service', 'slipstream-coordinator.service'];
    for (const name of units) cpSync(join(UNITS, name), join(root, 'etc/systemd/system', name));
    const r = spawnSync(SYSTEMD_ANALYZE, ['verify', '--man=no', `--root=${root}`, ...units.map((n) => join(root, 'etc/systemd/system', n))], { encoding: 'utf8' });
    assert.equal(r.error, undefined, `${SYSTEMD_ANALYZE} must be installed (Debian package systemd): ${String(r.error)}`);
    // verify only warns (exit 0) on unknown keys or bad values, so any output about our units fails too.
    const complaints = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '');
    assert.deepEqual(complaints, [], `systemd-analyze verify said:\n${complaints.join('\n')}`);
    assert.equal(r.status, 0);

    // The same check fails where node is missing: the verify above really looked.
    rmSync(join(root, 'usr/bin/node'));
    const missing = spawnSync(SYSTEMD_ANALYZE, ['verify', '--man=no', `--root=${root}`, join(root, 'etc/systemd/system', units[0]!)], { encoding: 'utf8' });
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /\/usr\/bin\/node is not executable/);
  });

  test('the units sandbox, limit and restart as the guide says', () => {
    for (const name of ['slipstream-relay.service', 'slipstream-coordinator.service']) {
      const unit = loadUnit(name);
      for (const [key, want] of Object.entries({ NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', User: 'slipstream', Restart: 'on-failure', CapabilityBoundingSet: '', AmbientCapabilities: '', KillSignal: 'SIGTERM' })) {
        assert.equal(one(unit, key), want, `${name}: ${key}`);
      }
      assert.ok(Number(one(unit, 'LimitNOFILE')) >= 65536, `${name}: LimitNOFILE`);
      // Exit 2 is the CLI's code for a bad config or flag: restarting cannot fix it.
      assert.equal(one(unit, 'RestartPreventExitStatus'), '2', name);
    }
    const relay = loadUnit('slipstream-relay.service');
    // One socket per flow: LimitNOFILE must cover the default sessionsMax with room to spare.
    assert.ok(Number(one(relay, 'LimitNOFILE')) > 100_000);
    // systemd must not SIGKILL a relay still inside its default drain.
    assert.ok(timeSpanMs(one(relay, 'TimeoutStopSec')) > DRAIN_TIMEOUT_MS_DEFAULT, 'TimeoutStopSec > drain.timeoutMs default');
  });

  test('relay: ExecReload (SIGHUP) reloads without dropping a live UDP flow; KillSignal (SIGTERM) drains and exits 0', async () => {
    const unit = loadUnit('slipstream-relay.service');
    // The origin: a UDP echo that remembers which relay source port each datagram came from.
    const origin = udpSocket();
    const seenFrom: string[] = [];
    origin.on('message', (msg, from) => {
      seenFrom.push(`${from.port}`);
      origin.send(Buffer.concat([Buffer.from('echo|'), msg]), from.port, from.address);
    });
    await new Promise<void>((resolve) => origin.bind(0, '127.0.0.1', resolve));
    const originPort = origin.address().port;
    const [gamePort, voicePort, metricsPort] = [await freePort('udp'), await freePort('udp'), await freePort('udp')];
    const config = join(dir, 'relay.yaml');
    const base = [
      'upstreamBindAddress: 127.0.0.1',
      `metrics: { listen: 127.0.0.1:${metricsPort} }`,
      'drain: { timeoutMs: 1500 }',
      'limits: { sessionsMax: 1000 }',
      'rules:',
      `  - { name: game, protocol: udp, listen: 127.0.0.1:${gamePort}, origins: [127.0.0.1:${originPort}] }`,
    ];
    writeFileSync(config, base.join('\n') + '\n');

    for (const pre of values(unit, 'ExecStartPre')) {
      const r = runToEnd(localCommand(pre, config));
      assert.equal(r.status, 0, `ExecStartPre ${pre}: ${r.stderr}`);
    }
    const start = localCommand(one(unit, 'ExecStart'), config);
    const relay = new Proc(spawn(start[0]!, start.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
    await relay.waitLog((l) => l.msg === 'relay started', 15_000, 'relay started');
    const pid = relay.child.pid!;

    const { socket: client, replies } = await udpClient((m) => m.toString());
    client.send('before-reload', gamePort, '127.0.0.1');
    await until(() => replies.includes('echo|before-reload'), 5000, 'the first echo');
    const upstreamPortBefore = seenFrom.at(-1);

    // --- systemctl reload: every ExecReload line in order, $MAINPID substituted, run for real.
    const reloads = values(unit, 'ExecReload');
    assert.ok(reloads.length >= 1);
    assert.match(reloads.at(-1)!, /^\/bin\/kill -HUP \$MAINPID$/, 'the last ExecReload sends SIGHUP to the relay');
    // A broken file: the --check line fails, so systemd never reaches the kill line and
    // `systemctl reload` reports the error; the relay keeps running untouched.
    writeFileSync(config, [...base, '  - { name: bad, protocol: udp, listen: 127.0.0.1:99999, origins: [127.0.0.1:1] }'].join('\n') + '\n');
    const broken = runToEnd(localCommand(reloads[0]!, config, { $MAINPID: String(pid) }));
    assert.equal(broken.status, 2, 'ExecReload --check refuses a broken file with exit 2');
    assert.match(broken.stderr, /rules\[1\]\.listen/);
    // The real change: a second rule and new limits.
    writeFileSync(config, [...base.map((l) => l.replace('sessionsMax: 1000', 'sessionsMax: 2000')), `  - { name: voice, protocol: udp, listen: 127.0.0.1:${voicePort}, origins: [127.0.0.1:${originPort}] }`].join('\n') + '\n');
    for (const line of reloads) {
      const r = runToEnd(localCommand(line, config, { $MAINPID: String(pid) }));
      assert.equal(r.status, 0, `ExecReload ${line}: ${r.stderr}`);
    }
    await relay.waitLog((l) => l.event === 'reloaded', 5000, 'the reloaded log line');
    assert.equal(relay.child.exitCode, null, 'SIGHUP did not end the relay');
    // The new rule works …
    const { socket: voice, replies: voiceReplies } = await udpClient((m) => m.toString());
    voice.send('voice', voicePort, '127.0.0.1');
    await until(() => voiceReplies.includes('echo|voice'), 5000, 'the reloaded voice rule');
    // … and the live flow was not dropped: same origin-facing socket, no new session, no end.
    client.send('after-reload', gamePort, '127.0.0.1');
    await until(() => replies.includes('echo|after-reload'), 5000, 'the echo after the reload');
    assert.equal(seenFrom.at(-1), upstreamPortBefore, 'the flow kept its origin-facing socket across SIGHUP');
    const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(await metrics(), /slipstream_relay_sessions_opened_total\{rule="game",protocol="udp"\} 1\n/);
    assert.ok(!relay.lines.some((l) => l.event === 'session_end' && l.rule === 'game'), 'no session ended');

    // --- systemctl stop: KillSignal to the main process (KillMode=mixed).
    const killSignal = one(unit, 'KillSignal') as NodeJS.Signals;
    assert.equal(values(unit, 'ExecStop').length, 0, 'stop is the KillSignal, not an ExecStop');
    const stopAt = performance.now();
    process.kill(pid, killSignal);
    await relay.waitLog((l) => l.event === 'draining', 5000, 'draining');
    const health = await fetch(`http://127.0.0.1:${metricsPort}/health`);
    assert.equal(health.status, 503, '/health answers 503 while draining');
    assert.match(await metrics(), /slipstream_relay_draining 1/);
    // The live flow is still served during the drain; a new one is not admitted.
    client.send('during-drain', gamePort, '127.0.0.1');
    await until(() => replies.includes('echo|during-drain'), 5000, 'the echo during the drain');
    const { socket: late, replies: lateReplies } = await udpClient((m) => m.toString());
    late.send('new-during-drain', gamePort, '127.0.0.1');
    const exit = await relay.exited;
    const tookMs = performance.now() - stopAt;
    assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM drains and exits 0, which Restart=on-failure does not restart');
    assert.ok(tookMs >= 1400 && tookMs < timeSpanMs(one(unit, 'TimeoutStopSec')), `drained for drain.timeoutMs (${Math.round(tookMs)} ms), inside TimeoutStopSec`);
    assert.equal(lateReplies.length, 0, 'no new session during the drain');
    const stopped = await relay.waitLog((l) => l.event === 'stopped', 1000, 'stopped');
    assert.equal(stopped.sessionsCut, 2, 'the flows still open at the deadline (game and voice) are reported');

    for (const s of [client, voice, late, origin]) s.close();
  });

  test('relay: a config error exits 2, the code RestartPreventExitStatus names', async () => {
    const unit = loadUnit('slipstream-relay.service');
    const config = join(dir, 'invalid.yaml');
    writeFileSync(config, 'rules:\n  - { name: x, protocol: sctp, listen: 127.0.0.1:1, origins: [127.0.0.1:2] }\n');
    const start = localCommand(one(unit, 'ExecStart'), config);
    const r = runToEnd(start);
    assert.equal(String(r.status), one(unit, 'RestartPreventExitStatus'));
  });

  test('coordinator: ExecStart with the example config serves /health; KillSignal stops it with exit 0; SIGHUP would end it, so there is no ExecReload', async () => {
    const unit = loadUnit('slipstream-coordinator.service');
    assert.equal(values(unit, 'ExecReload').length, 0);
    const run = async (): Promise<{ proc: Proc; url: string }> => {
      // The example as shipped, with the listen address moved to a free loopback port.
      const example = readFileSync(join(ROOT, 'deploy/examples/coordinator.yaml'), 'utf8');
      assert.match(example, /^listen: .*$/m);
      const config = join(dir, 'coordinator.yaml');
      writeFileSync(config, example.replace(/^listen: .*$/m, 'listen: 127.0.0.1:0').replace(/^store: .*$/m, 'store: memory'));
      const argv = localCommand(one(unit, 'ExecStart'), config);
      const proc = new Proc(spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
      const listening = await proc.waitLog((l) => l.event === 'listening', 15_000, 'coordinator listening');
      return { proc, url: String(listening.url) };
    };
    const first = await run();
    assert.deepEqual(first.proc.lines.find((l) => l.event === 'listening')!.generatedKeys, [], 'the example configures every key');
    const health = (await (await fetch(`${first.url}/health`)).json()) as { status: string };
    assert.equal(health.status, 'ok');
    process.kill(first.proc.child.pid!, one(unit, 'KillSignal') as NodeJS.Signals);
    assert.deepEqual(await first.proc.exited, { code: 0, signal: null });

    const second = await run();
    process.kill(second.proc.child.pid!, 'SIGHUP');
    assert.deepEqual(await second.proc.exited, { code: null, signal: 'SIGHUP' }, 'the coordinator has no SIGHUP handler');
  });
});
