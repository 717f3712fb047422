/**
 * deploy/Dockerfile. No container engine runs on the project's machines (the docker
 * client is there, the daemon is not), so the image is not built here. hadolint is not in
 * Debian's archive or the npm registry, so instead this file checks, as a documented
 * checklist, what a build would depend on:
 *  1. three stages (build, deps, runtime); the runtime runs as a dedicated non-root user;
 *  2. HEALTHCHECK runs deploy/docker/healthcheck.mjs, which exists (test/deploy-fleet
 *     runs it against a live relay and coordinator);
 *  3. EXPOSE lists the CLI's default ports (relay metrics, coordinator, sim proxy) and the
 *     example relay's ports, and deploy/README.md documents every one;
 *  4. every file the build stage COPYs exists and passes Dockerfile.dockerignore;
 *  5. the runtime's /app is the release archive with `npm ci --omit=dev --ignore-scripts`:
 *     the test does exactly that in a temp dir and runs the ENTRYPOINT with each command.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { ConfigReader } from '../kit/config.js';
import { LISTEN_DEFAULT as COORDINATOR_LISTEN_DEFAULT } from '../coordinator/src/constants.js';
import { parseRelayConfig } from '../relay/src/config.js';
import { PROXY_API_LISTEN_DEFAULT } from '../sim/src/proxy/constants.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCKERFILE = join(ROOT, 'deploy', 'Dockerfile');
const dir = mkdtempSync(join(tmpdir(), 'slipstream-deploy-docker-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly stage: string;
}

/** Dockerfile → instructions (continuations joined, comments and parser directives dropped), each tagged with its stage. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = '';
  const logical = text.replace(/\\\n(\s*#.*\n)*/g, ' ').split('\n');
  for (const raw of logical) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(.*)$/.exec(line);
    assert.ok(m, `not an instruction: ${line}`);
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stage = /\bAS\s+(\S+)/i.exec(m[2]!)?.[1] ?? '';
    out.push({ op, args: m[2]!.trim(), stage });
  }
  return out;
}

const instructions = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
const runtime = (op: string): Instruction[] => instructions.filter((i) => i.stage === 'runtime' && i.op === op);

describe('deploy/Dockerfile (checked without a container engine)', () => {
  test('1. multi-stage: build, deps, runtime; the runtime runs as a dedicated non-root user', () => {
    const stages = instructions.filter((i) => i.op === 'FROM').map((i) => i.stage);
    assert.deepEqual(stages, ['build', 'deps', 'runtime']);
    const users = runtime('USER');
    assert.equal(users.length, 1);
    assert.equal(users[0]!.args, 'slipstream');
    assert.ok(runtime('RUN').some((i) => /useradd --system .*slipstream/.test(i.args)), 'the user is created as a system user');
    // Nothing after USER switches back to root.
    const last = instructions.filter((i) => i.stage === 'runtime').map((i) => i.op);
    assert.ok(last.lastIndexOf('USER') > last.lastIndexOf('RUN'), 'no RUN as root after USER');
  });

  test('2. HEALTHCHECK runs the health script, which exists', () => {
    const health = runtime('HEALTHCHECK');
    assert.equal(health.length, 1);
    assert.match(health[0]!.args, /CMD \["node", "\/app\/deploy\/docker\/healthcheck\.mjs"\]/);
    assert.ok(existsSync(join(ROOT, 'deploy', 'docker', 'healthcheck.mjs')));
    assert.deepEqual(JSON.parse(runtime('ENTRYPOINT')[0]!.args), ['node', '/app/dist/cli/slipstream.js']);
    assert.equal(runtime('STOPSIGNAL')[0]!.args, 'SIGTERM', "SIGTERM is the relay's drain");
  });

  test('3. EXPOSE: the CLI defaults and the example relay ports, each documented in deploy/README.md', () => {
    const exposed = new Set(runtime('EXPOSE').flatMap((i) => i.args.split(/\s+/)));
    const port = (listen: string): string => listen.slice(listen.lastIndexOf(':') + 1);
    const relayDefaults = parseRelayConfig(new ConfigReader('<defaults>', 'tunnel: { listen: "127.0.0.1:4433", ticketPublicKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", sealKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }'));
    const wanted = [`${relayDefaults.metricsListen!.port}/tcp`, `${port(COORDINATOR_LISTEN_DEFAULT)}/tcp`, `${port(PROXY_API_LISTEN_DEFAULT)}/tcp`];
    // The relay engineer's example config: its tunnel, its first UDP rule and its TCP rule.
    const example = YAML.parse(readFileSync(join(ROOT, 'deploy', 'examples', 'relay.yaml'), 'utf8')) as { tunnel: { listen: string }; rules: { protocol: string; listen: string }[] };
    wanted.push(`${port(example.tunnel.listen)}/udp`);
    for (const protocol of ['udp', 'tcp']) wanted.push(`${port(example.rules.find((r) => r.protocol === protocol)!.listen)}/${protocol}`);
    for (const p of wanted) assert.ok(exposed.has(p), `EXPOSE ${p}`);
    const readme = readFileSync(join(ROOT, 'deploy', 'README.md'), 'utf8');
    for (const p of exposed) {
      const [number, protocol] = p.split('/');
      assert.match(readme, new RegExp(`\\|\\s*${number}/${protocol}\\s*\\|`), `deploy/README.md's port table lists ${p}`);
    }
  });

  test('4. every COPY from the build context exists and passes Dockerfile.dockerignore', () => {
    const ignore = readFileSync(join(ROOT, 'deploy', 'Dockerfile.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    assert.equal(ignore[0], '**', 'everything is excluded unless listed');
    const copies = instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
    assert.ok(copies.length >= 5);
    for (const copy of copies) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const source of sources) {
        assert.ok(existsSync(join(ROOT, source)), `COPY ${source}: exists`);
        assert.ok(ignore.includes(`!${source}`) || ignore.includes(`!${source}/**`), `COPY ${source}: let through by Dockerfile.dockerignore`);
      }
    }
    // tsc in the build stage compiles what the CLI imports: every top-level folder it
    // reaches, directly or through another folder (cli → sim → kit), is copied.
    const copied = new Set(copies.flatMap((c) => c.args.split(/\s+/).slice(0, -1)));
    const reached = new Set(['cli']);
    for (const folder of reached) {
      for (const file of sourceFiles(join(ROOT, folder))) {
        for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\s[^;]*?from '((?:\.\.\/)+)([a-z]+)\/|\bimport\('((?:\.\.\/)+)([a-z]+)\//gm)) {
          const top = relative(ROOT, resolve(dirname(file), (m[1] ?? m[3])!, (m[2] ?? m[4])!)).split(sep)[0]!;
          reached.add(top);
        }
      }
    }
    for (const folder of reached) assert.ok(copied.has(folder), `the CLI reaches ${folder}/: COPY ${folder}`);
    assert.match(instructions.filter((i) => i.stage === 'build' && i.op === 'RUN').map((i) => i.args).join('\n'), /deploy\/scripts\/build-release\.sh --no-build/);
    assert.match(instructions.filter((i) => i.stage === 'deps' && i.op === 'RUN')[0]!.args, /npm ci --omit=dev --ignore-scripts/);
  });

  test('5. the ENTRYPOINT runs every command from the release after a clean npm ci --omit=dev', async () => {
    const build = spawnSync(join(ROOT, 'deploy', 'scripts', 'build-release.sh'), ['--no-build', join(dir, 'release')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(build.status, 0, build.stderr);
    const app = join(dir, 'app');
    mkdirSync(app);
    const untar = spawnSync('tar', ['-xzf', build.stdout.trim().split('\n').at(-1)!, '-C', app, '--strip-components=1']);
    assert.equal(untar.status, 0);
    assert.ok(!existsSync(join(app, 'node_modules')));
    const npm = spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, encoding: 'utf8', timeout: 240_000 });
    assert.equal(npm.status, 0, npm.stderr);
    for (const dev of ['typescript', 'eslint', 'fast-check', 'playwright-core']) assert.ok(!existsSync(join(app, 'node_modules', dev)), `${dev} (dev) is not installed`);
    const entry = join(app, 'dist', 'cli', 'slipstream.js');
    const run = (args: string[]): ReturnType<typeof spawnSync> => spawnSync(process.execPath, [entry, ...args], { encoding: 'utf8', timeout: 30_000 });
    for (const args of [['--help'], ['relay', '--help'], ['coordinator', '--help'], ['sim', 'proxy', '--help']]) {
      const r = run(args);
      assert.equal(r.status, 0, `${args.join(' ')}: ${String(r.stderr)}`);
    }
    const config = join(dir, 'relay.yaml');
    writeFileSync(config, 'metrics: { listen: "127.0.0.1:0" }\nrules:\n  - { name: game, protocol: udp, listen: 127.0.0.1:0, origins: [127.0.0.1:27015] }\n');
    const check = run(['relay', '--config', config, '--check']);
    assert.equal(check.status, 0, String(check.stderr));
    // Each long-running command starts (its imports resolve from production dependencies
    // only) and stops on SIGTERM with exit 0.
    // Each waits for the line its command logs once its signal handlers are in place (a
    // relay logs 'listening' per rule earlier, while a SIGTERM would still kill it outright).
    const commands: [string[], RegExp][] = [
      [['relay', '--config', config], /relay started/],
      [['coordinator', '--listen', '127.0.0.1:0', '--log-level', 'warn'], /coordinator listening/],
      [['sim', 'proxy', '--listen', '127.0.0.1:0'], /sim proxy started/],
    ];
    for (const [args, ready] of commands) {
      const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      for (let waited = 0; waited < 15_000 && !ready.test(output) && child.exitCode === null; waited += 20) await new Promise((r) => setTimeout(r, 20));
      assert.match(output, ready, `${args.join(' ')} started: ${output}`);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, `${args.join(' ')} exits 0 on SIGTERM: ${output}`);
    }
  });
});

/** The TypeScript sources under `dir`, tests left out (the image compiles none). */
function sourceFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'test' && entry.name !== 'node_modules') found.push(...sourceFiles(path));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) found.push(path);
  }
  return found;
}
