/**
 * deploy/ansible: `ansible-playbook --syntax-check`, `ansible-lint` (Debian's packages
 * ansible and ansible-lint), the example inventory's configuration files rendered by the
 * roles' own tasks and checked with Slipstream's validators (each relay's `fleet`
 * section: id, region, coordinates, public tunnel address, capacity), the playbook
 * refusing the example vault's placeholder keys, and a `--check` run of the whole site.yml
 * against localhost (connection local) with a real release archive and keys from
 * deploy/scripts/generate-keys.mjs.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { ConfigReader } from '../kit/config.js';
import { loadSettings } from '../coordinator/src/config.js';
import { loadRelayConfig } from '../relay/src/config.js';
import { rawPublicKey, ticketSigningKeyFromSeed } from '../proto/src/ticket.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ANSIBLE = join(ROOT, 'deploy', 'ansible');
const dir = mkdtempSync(join(tmpdir(), 'slipstream-deploy-ansible-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs an Ansible tool in deploy/ansible without colours; it must be installed (.ci/run installs it). */
function ansible(tool: string, args: string[], timeoutMs = 180_000): { status: number | null; out: string } {
  const r = spawnSync(tool, args, {
    cwd: ANSIBLE,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 1 << 26,
    env: { ...process.env, ANSIBLE_NOCOLOR: '1', ANSIBLE_FORCE_COLOR: '0', NO_COLOR: '1', ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp'), ANSIBLE_STDOUT_CALLBACK: 'default' },
  });
  assert.equal(r.error, undefined, `${tool} must be installed (Debian packages ansible and ansible-lint): ${String(r.error)}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The vault file deploy/scripts/generate-keys.mjs prints, parsed. */
function generatedKeys(): { vault_ticket_signing_seed: string; vault_ticket_public_key: string; vault_seal_key: string; vault_fleet_secret: string; vault_api_keys: string[]; vault_redis_password: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'deploy', 'scripts', 'generate-keys.mjs')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return YAML.parse(r.stdout) as ReturnType<typeof generatedKeys>;
}

describe('deploy/ansible', () => {
  test('ansible-playbook --syntax-check passes on site.yml with the example inventory', () => {
    const r = ansible('ansible-playbook', ['-i', 'inventory/example', 'site.yml', '--syntax-check']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /playbook: site\.yml/);
  });

  test('ansible-lint passes (production profile)', () => {
    const r = ansible('ansible-lint', ['--nocolor', '-p']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /Passed with production profile: 0 failure\(s\), 0 warning\(s\)/);
  });

  test("the roles write the example inventory's relay.yaml and coordinator.yaml, and Slipstream accepts them", () => {
    // The inventory as shipped plus the roles' defaults at the lowest 'all' level, so the
    // example's group_vars override them exactly as they override role defaults in site.yml.
    const inventory = join(dir, 'inventory');
    cpSync(join(ANSIBLE, 'inventory', 'example'), inventory, { recursive: true });
    const defaults: Record<string, unknown> = {};
    for (const role of ['slipstream', 'relay', 'coordinator', 'redis']) Object.assign(defaults, YAML.parse(readFileSync(join(ANSIBLE, 'roles', role, 'defaults', 'main.yml'), 'utf8')));
    writeFileSync(join(inventory, 'group_vars', 'all', '00-role-defaults.yml'), YAML.stringify(defaults));
    // The release the template's validate= runs: this checkout.
    mkdirSync(join(dir, 'prefix', 'releases'), { recursive: true });
    symlinkSync(ROOT, join(dir, 'prefix', 'releases', 'checkout'));
    // A playbook outside the checkout that runs the roles' own config task files; their
    // templates are found beside it (Ansible looks in <playbook dir>/templates).
    const rotationTicketKey = Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(randomBytes(32)))).toString('base64');
    const rotationSealKey = randomBytes(32).toString('base64');
    const playbook = join(dir, 'play', 'render.yml');
    mkdirSync(join(dir, 'play', 'templates'), { recursive: true });
    for (const [role, template] of [['relay', 'relay.yaml.j2'], ['coordinator', 'coordinator.yaml.j2']] as const) symlinkSync(join(ANSIBLE, 'roles', role, 'templates', template), join(dir, 'play', 'templates', template));
    writeFileSync(
      playbook,
      YAML.stringify([
        {
          name: 'Render the configuration files of the example inventory',
          hosts: 'relays:coordinators',
          connection: 'local',
          gather_facts: false,
          vars_files: [join(ANSIBLE, 'roles', 'relay', 'vars', 'main.yml'), join(ANSIBLE, 'roles', 'coordinator', 'vars', 'main.yml')],
          tasks: [
            { name: 'Config dir', 'ansible.builtin.file': { path: '{{ slipstream_config_dir }}', state: 'directory', mode: '0750' } },
            { name: 'Relay files', 'ansible.builtin.include_tasks': join(ANSIBLE, 'roles', 'relay', 'tasks', 'config.yml'), when: "'relays' in group_names" },
            { name: 'Coordinator files', 'ansible.builtin.include_tasks': join(ANSIBLE, 'roles', 'coordinator', 'tasks', 'config.yml'), when: "'coordinators' in group_names" },
          ],
          handlers: ['Reload relay', 'Restart coordinator'].map((name) => ({ name, 'ansible.builtin.debug': { msg: `${name} (not in this test)` } })),
        },
      ]),
    );
    {
      const r = ansible('ansible-playbook', [
        '-i', inventory, playbook,
        '-e', `slipstream_config_dir=${dir}/etc/{{ inventory_hostname }}`,
        '-e', `slipstream_prefix=${dir}/prefix`,
        '-e', 'slipstream_release=checkout',
        '-e', 'slipstream_group=root',
        '-e', 'ansible_python_interpreter=/usr/bin/python3',
        // A key rotation in progress: each relay accepts one more ticket key and seal key.
        '-e', JSON.stringify({ relay_additional_ticket_public_keys: [rotationTicketKey], relay_additional_seal_keys: [rotationSealKey] }),
        // Relays outside the inventory that use these as their exit.
        '-e', JSON.stringify({ relay_tunnel_peer_cidrs: ['198.51.100.0/24', '2001:db8:77::/48'] }),
      ]);
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, /failed=0/);
    }
    const hosts = YAML.parse(readFileSync(join(ANSIBLE, 'inventory', 'example', 'hosts.yml'), 'utf8')) as { all: { children: { relays: { children: Record<string, { hosts: Record<string, { ansible_host: string }> }> } } } };
    const regions = Object.entries(hosts.all.children.relays.children);
    assert.equal(regions.length, 3, 'a three-region example');
    const relayIds: string[] = [];
    const fleetSecrets = new Set<string | undefined>();
    for (const [group, { hosts: relays }] of regions) {
      const region = group.replace('relays_', '').replace('_', '-');
      const groupVars = YAML.parse(readFileSync(join(ANSIBLE, 'inventory', 'example', 'group_vars', `${group}.yml`), 'utf8')) as { relay_latitude: number; relay_longitude: number };
      for (const [host, { ansible_host: address }] of Object.entries(relays)) {
        const config = loadRelayConfig(join(dir, 'etc', host, 'relay.yaml'));
        assert.deepEqual(config.core.rules.map((r) => r.name), ['game-udp', 'lobby'], host);
        assert.ok(config.core.tunnel, `${host}: tunnel`);
        assert.equal(config.drainTimeoutMs, 900_000);
        assert.equal(config.core.tunnel.additionalTicketPublicKeys?.length, 1, `${host}: the rotation's extra ticket key`);
        assert.deepEqual(config.core.tunnel.additionalSealKeys, [new Uint8Array(Buffer.from(rotationSealKey, 'base64'))], `${host}: the rotation's extra seal key`);
        assert.equal(readFileSync(join(dir, 'etc', host, 'relay.yaml'), 'utf8').match(/^ {2}peerCidrs: (.*)$/m)?.[1], '["198.51.100.0/24", "2001:db8:77::/48"]', `${host}: tunnel.peerCidrs from relay_tunnel_peer_cidrs`);
        assert.equal(config.core.tunnel.peerCidrs?.length, 2, `${host}: the relay reads both peer ranges`);
        assert.equal(config.coordinatorFleetSecret, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
        fleetSecrets.add(config.coordinatorFleetSecret);
        assert.match(readFileSync(join(dir, 'etc', host, 'relay.yaml'), 'utf8'), new RegExp(`region ${region}`));
        // The fleet section: the relay registers as its inventory name, in its region, at
        // its public address and the tunnel port, with the capacity from Sizing.
        const fleet = config.fleet;
        assert.ok(fleet, `${host}: relay.yaml has a fleet section, so the relay registers`);
        assert.equal(fleet.relayId, host);
        assert.equal(fleet.region, region);
        assert.equal(fleet.latitude, groupVars.relay_latitude, `${host}: latitude`);
        assert.equal(fleet.longitude, groupVars.relay_longitude, `${host}: longitude`);
        assert.equal(fleet.tunnelAddress, `${address}:4433`, `${host}: public tunnel address from ansible_host`);
        assert.equal(fleet.probeAddress, undefined, `${host}: probes go to the tunnel address`);
        assert.equal(fleet.capacitySessions, 1000);
        relayIds.push(fleet.relayId);
      }
    }
    assert.equal(new Set(relayIds).size, 6, 'six distinct relay ids');
    for (const host of ['coord-1', 'coord-2']) {
      const path = join(dir, 'etc', host, 'coordinator.yaml');
      const settings = loadSettings(ConfigReader.fromFile(path));
      assert.deepEqual(settings.keys.generated, [], `${host}: every key configured`);
      assert.deepEqual([...fleetSecrets], [settings.keys.fleetSecret], `${host}: the coordinator accepts the relays' fleet secret`);
      assert.deepEqual(settings.keys.fleetSecretsPrevious, [], `${host}: no rotation in progress`);
      // allowedRelayIds: by default exactly the relays of the inventory's relays group.
      assert.deepEqual([...settings.allowedRelayIds].sort(), [...relayIds].sort(), `${host}: allowedRelayIds from the relays group`);
      assert.equal(settings.store, 'redis://:REPLACE-with-openssl-rand-base64-32@192.0.2.10:6379/0', `${host}: the store comes from the redis group`);
      assert.equal(settings.origins.length, 3);
    }
  });

  test("the role's region coordinates are the bootstrap script's", () => {
    const vars = YAML.parse(readFileSync(join(ANSIBLE, 'roles', 'relay', 'vars', 'main.yml'), 'utf8')) as { relay_region_coordinates: Record<string, [number, number]> };
    const script = readFileSync(join(ROOT, 'deploy', 'scripts', 'relay-bootstrap.mjs'), 'utf8');
    const table = /const REGION_COORDINATES = \{([^}]*)\}/.exec(script)![1]!;
    const fromScript = Object.fromEntries([...table.matchAll(/'([^']+)': \[(-?[\d.]+), (-?[\d.]+)\]/g)].map((m) => [m[1]!, [Number(m[2]), Number(m[3])]]));
    assert.ok(Object.keys(fromScript).length >= 10);
    assert.deepEqual(vars.relay_region_coordinates, fromScript);
    for (const region of ['eu-central', 'us-east', 'ap-southeast']) assert.ok(region in fromScript, region);
  });

  test("site.yml refuses the example vault's all-zero placeholder keys before touching any host", () => {
    const r = ansible('ansible-playbook', ['-i', 'inventory/example', 'site.yml', '--check']);
    assert.notEqual(r.status, 0, r.out);
    for (const [host, keys] of [
      ['coord-1', 'coordinator_ticket_signing_seed, coordinator_seal_key, coordinator_fleet_secret, coordinator_api_keys'],
      ['fra-1', 'relay_ticket_public_key, relay_seal_key, relay_fleet_secret'],
      ['redis-1', 'redis_password'],
    ]) {
      assert.ok(r.out.includes(`${host}: the example vault's placeholder values, which anyone can read in this repository, are still in use for ${keys}.`), `${host}: ${keys} refused\n${r.out}`);
    }
    assert.match(r.out, /node deploy\/scripts\/generate-keys\.mjs > inventory\/<yours>\/group_vars\/all\/vault\.yml/);
    // The first play stops the run: no host was contacted (no facts gathered, no role ran).
    assert.ok(!r.out.includes('Gathering Facts'), r.out);
    assert.match(r.out, /NO MORE HOSTS LEFT/);
    assert.match(r.out, /fra-1\s+: ok=0\s+changed=0\s+unreachable=0\s+failed=1/);
  });

  test("site.yml refuses relays whose fleet secret is not the coordinators' (their registration would get 403)", () => {
    const vault = join(dir, 'vault-mismatch.yml');
    writeFileSync(vault, YAML.stringify(generatedKeys()));
    const r = ansible('ansible-playbook', ['-i', 'inventory/example', 'site.yml', '--check', '-e', `@${vault}`, '-e', `relay_fleet_secret=${randomBytes(32).toString('base64')}`]);
    assert.notEqual(r.status, 0, r.out);
    const keysTask = r.out.slice(r.out.indexOf('TASK [Every key is a real one'), r.out.indexOf('TASK [Relays hold'));
    assert.equal(keysTask.match(/^ok: \[/gm)?.length, 9, `the generated keys are real ones on all nine hosts\n${keysTask}`);
    assert.match(r.out, /A relay's relay_fleet_secret is neither the coordinator's coordinator_fleet_secret nor\s+one of its coordinator_fleet_secrets_previous \(coord-1 refuses fra-1, coord-1 refuses fra-2, [^)]*coord-2 refuses sin-2\)/);
    assert.ok(!r.out.includes('Gathering Facts'), r.out);
  });

  test('during a fleet-secret rotation the check takes coordinator_fleet_secrets_previous into account', () => {
    const keys = generatedKeys();
    const oldSecret = keys.vault_fleet_secret;
    const newSecret = randomBytes(32).toString('base64');
    const vault = join(dir, 'vault-rotation.yml');
    // deploy/README.md step 1: the new secret is vault_fleet_secret, the old one is kept.
    writeFileSync(vault, YAML.stringify({ ...keys, vault_fleet_secret: newSecret, vault_fleet_secrets_previous: [oldSecret] }));
    const checkTask = (out: string): string => out.slice(out.indexOf('TASK [Relays hold a fleet secret'), out.indexOf('PLAY [Redis') >= 0 ? out.indexOf('PLAY [Redis') : undefined);
    // Hosts are "reached" on 127.0.0.1:1 (refused at once): only the first play matters here.
    const unreachable = ['-e', 'ansible_host=127.0.0.1', '-e', 'ansible_port=1'];
    for (const relaySecret of [newSecret, oldSecret]) {
      // Relays rolled (new secret) or not yet (old secret): both accepted.
      const r = ansible('ansible-playbook', ['-i', 'inventory/example', 'site.yml', '--check', '-e', `@${vault}`, '-e', `relay_fleet_secret=${relaySecret}`, ...unreachable]);
      const task = checkTask(r.out);
      assert.match(task, /^ok: \[/m, task);
      assert.doesNotMatch(r.out, /refuses/, r.out.slice(-3000));
      assert.match(r.out, /PLAY \[Redis for coordinator replicas\]/, 'the run went past the checks');
    }
    // The old secret removed while a relay still holds it: refused before any host is touched.
    const removed = ansible('ansible-playbook', ['-i', 'inventory/example', 'site.yml', '--check', '-e', `@${vault}`, '-e', `relay_fleet_secret=${oldSecret}`, '-e', '{"vault_fleet_secrets_previous": []}', ...unreachable]);
    assert.notEqual(removed.status, 0);
    assert.match(removed.out, /coord-1 refuses fra-1/);
    assert.ok(!removed.out.includes('PLAY [Redis'), removed.out);
  });

  test('deploy/scripts/generate-keys.mjs prints a vault file of fresh keys with the seed\'s ticket public key', () => {
    const keys = generatedKeys();
    const again = generatedKeys();
    for (const key of ['vault_ticket_signing_seed', 'vault_seal_key', 'vault_fleet_secret'] as const) {
      assert.equal(Buffer.from(keys[key], 'base64').length, 32, key);
      assert.notEqual(keys[key], again[key], `${key}: fresh every run`);
    }
    assert.equal(keys.vault_api_keys.length, 1);
    assert.equal(Buffer.from(keys.vault_api_keys[0]!, 'base64').length, 32);
    assert.match(keys.vault_redis_password, /^[0-9a-f]{64}$/);
    assert.equal(keys.vault_ticket_public_key, Buffer.from(rawPublicKey(ticketSigningKeyFromSeed(Buffer.from(keys.vault_ticket_signing_seed, 'base64')))).toString('base64'));
  });

  test('site.yml --check against localhost (connection local) succeeds', () => {
    const build = spawnSync(join(ROOT, 'deploy', 'scripts', 'build-release.sh'), ['--no-build', join(dir, 'release')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(build.status, 0, build.stderr);
    const archive = build.stdout.trim().split('\n').at(-1)!;
    // Real keys, as an operator makes them: the generator's vault file, passed with -e @file.
    const vault = join(dir, 'vault.yml');
    // Mid-rotation (deploy/README.md "Key rotation"): an old fleet secret still accepted.
    const previousSecret = randomBytes(32).toString('base64');
    writeFileSync(vault, YAML.stringify({ ...generatedKeys(), vault_fleet_secrets_previous: [previousSecret] }));
    const inventory = join(dir, 'localhost.yml');
    writeFileSync(
      inventory,
      YAML.stringify({
        all: {
          vars: {
            ansible_connection: 'local',
            ansible_python_interpreter: '/usr/bin/python3',
            slipstream_release_archive: archive,
            slipstream_monitoring_cidrs: ['127.0.0.1/32'],
          },
          children: {
            redis: { hosts: { localhost: { ansible_host: '127.0.0.1', redis_password: '{{ vault_redis_password }}' } } },
            coordinators: {
              hosts: { localhost: null },
              vars: { coordinator_ticket_signing_seed: '{{ vault_ticket_signing_seed }}', coordinator_seal_key: '{{ vault_seal_key }}', coordinator_fleet_secret: '{{ vault_fleet_secret }}', coordinator_fleet_secrets_previous: '{{ vault_fleet_secrets_previous }}', coordinator_api_keys: '{{ vault_api_keys }}' },
            },
            relays: {
              hosts: { localhost: null },
              vars: {
                // A region the role's coordinate table knows: the fleet section needs no more.
                relay_region: 'eu-central',
                relay_ticket_public_key: '{{ vault_ticket_public_key }}',
                relay_seal_key: '{{ vault_seal_key }}',
                relay_fleet_secret: '{{ vault_fleet_secret }}',
                relay_coordinator_url: 'http://127.0.0.1:7400',
                relay_rules: [{ name: 'game-udp', protocol: 'udp', listen: '127.0.0.1:27015', origins: ['127.0.0.1:27016'] }],
              },
            },
          },
        },
      }),
    );
    const r = ansible('ansible-playbook', ['-i', inventory, 'site.yml', '--check', '--diff', '-e', `@${vault}`]);
    assert.equal(r.status, 0, r.out.slice(-4000));
    assert.match(r.out, /localhost\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0/);
    // Each role ran: its config was previewed.
    assert.match(r.out, /TASK \[Every key is a real one[^\n]*\nok: \[localhost\]/);
    // The relay's fleet section, previewed: it registers as localhost at 127.0.0.1:4433.
    assert.match(r.out, /\+fleet:\n\+ {2}relayId: 'localhost'\n\+ {2}region: 'eu-central'\n\+ {2}latitude: 50\.11\n\+ {2}longitude: 8\.68\n\+ {2}tunnelAddress: '127\.0\.0\.1:4433'/);
    // The coordinator's config, previewed: the previous secret kept, the inventory's relay admitted.
    assert.ok(r.out.includes(`+  fleetSecretsPrevious: ["${previousSecret}"]`), r.out.slice(-6000));
    assert.ok(r.out.includes('+allowedRelayIds: ["localhost"]'), r.out.slice(-6000));
    for (const task of ['relay : Check the fleet settings', 'relay : Relay configuration file relay.yaml', 'coordinator : Coordinator configuration file coordinator.yaml', 'redis : Redis configuration', 'slipstream : Kernel and network tuning', 'slipstream : Host firewall base', 'relay : Relay firewall rules', 'relay : Unit slipstream-relay.service']) {
      assert.ok(r.out.includes(`TASK [${task}`), `--check ran ${task}`);
    }
  });
});
