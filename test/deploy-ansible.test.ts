/**
 * deploy/ansible: `ansible-playbook --syntax-check`, `ansible-lint` (Debian's packages
 * ansible and ansible-lint), the example inventory's configuration files rendered by the
 * roles' own tasks and checked with Slipstream's validators, and a `--check` run of the
 * whole site.yml against localhost (connection local) with a real release archive.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { ConfigReader } from '../cli/config.js';
import { loadSettings } from '../coordinator/src/config.js';
import { loadRelayConfig } from '../relay/src/config.js';

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
      ]);
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, /failed=0/);
    }
    const hosts = YAML.parse(readFileSync(join(ANSIBLE, 'inventory', 'example', 'hosts.yml'), 'utf8')) as { all: { children: { relays: { children: Record<string, { hosts: Record<string, unknown> }> } } } };
    const regions = Object.entries(hosts.all.children.relays.children);
    assert.equal(regions.length, 3, 'a three-region example');
    for (const [group, { hosts: relays }] of regions) {
      for (const host of Object.keys(relays)) {
        const config = loadRelayConfig(join(dir, 'etc', host, 'relay.yaml'));
        assert.deepEqual(config.core.rules.map((r) => r.name), ['game-udp', 'lobby'], host);
        assert.ok(config.core.tunnel, `${host}: tunnel`);
        assert.equal(config.drainTimeoutMs, 900_000);
        assert.equal(config.coordinatorFleetSecret, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
        assert.match(readFileSync(join(dir, 'etc', host, 'relay.yaml'), 'utf8'), new RegExp(`region ${group.replace('relays_', '').replace('_', '-')}`));
      }
    }
    for (const host of ['coord-1', 'coord-2']) {
      const path = join(dir, 'etc', host, 'coordinator.yaml');
      const settings = loadSettings(ConfigReader.fromFile(path));
      assert.deepEqual(settings.keys.generated, [], `${host}: every key configured`);
      assert.equal(settings.store, 'redis://:REPLACE-with-openssl-rand-base64-32@192.0.2.10:6379/0', `${host}: the store comes from the redis group`);
      assert.equal(settings.origins.length, 3);
    }
  });

  test('site.yml --check against localhost (connection local) succeeds', () => {
    const build = spawnSync(join(ROOT, 'deploy', 'scripts', 'build-release.sh'), ['--no-build', join(dir, 'release')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(build.status, 0, build.stderr);
    const archive = build.stdout.trim().split('\n').at(-1)!;
    const zeros = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
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
            redis: { hosts: { localhost: { ansible_host: '127.0.0.1', redis_password: 'check-mode-password-0123' } } },
            coordinators: {
              hosts: { localhost: null },
              vars: { coordinator_ticket_signing_seed: zeros, coordinator_seal_key: zeros, coordinator_fleet_secret: zeros, coordinator_api_keys: [zeros] },
            },
            relays: {
              hosts: { localhost: null },
              vars: {
                relay_region: 'local',
                relay_ticket_public_key: 'O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik=',
                relay_seal_key: zeros,
                relay_fleet_secret: zeros,
                relay_coordinator_url: 'http://127.0.0.1:7400',
                relay_rules: [{ name: 'game-udp', protocol: 'udp', listen: '127.0.0.1:27015', origins: ['127.0.0.1:27016'] }],
              },
            },
          },
        },
      }),
    );
    const r = ansible('ansible-playbook', ['-i', inventory, 'site.yml', '--check', '--diff']);
    assert.equal(r.status, 0, r.out.slice(-4000));
    assert.match(r.out, /localhost\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0/);
    // Each role ran: its config was previewed.
    for (const task of ['relay : Relay configuration file relay.yaml', 'coordinator : Coordinator configuration file coordinator.yaml', 'redis : Redis configuration', 'slipstream : Kernel and network tuning', 'slipstream : Host firewall base', 'relay : Relay firewall rules', 'relay : Unit slipstream-relay.service']) {
      assert.ok(r.out.includes(`TASK [${task}`), `--check ran ${task}`);
    }
  });
});
