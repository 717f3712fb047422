// Prints the fleet credential a new relay is bootstrapped with (deploy/cloud-init):
//   node deploy/scripts/fleet-credential.mjs /etc/slipstream/coordinator.yaml
// → v1.<fleetSecret>.<sealKey>
// A relay needs two secrets from the coordinator's config: the fleet secret (to follow the
// revocation feed) and the seal key (to open session keys in tickets). The coordinator
// serves neither over its API, so the credential carries both, joined by '.' (never in
// base64). Treat it like the keys themselves: it lets a host act as a relay of this fleet.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'));
const YAML = require('yaml');

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: node deploy/scripts/fleet-credential.mjs COORDINATOR_CONFIG.yaml\n');
  process.exit(2);
}
const keys = (YAML.parse(readFileSync(path, 'utf8')) ?? {}).keys ?? {};
const b64 = /^[A-Za-z0-9+/]+={0,2}$/;
for (const key of ['fleetSecret', 'sealKey']) {
  if (typeof keys[key] !== 'string' || !b64.test(keys[key])) {
    process.stderr.write(`${path}: keys.${key} is missing or not base64; the credential needs both keys.fleetSecret and keys.sealKey\n`);
    process.exit(2);
  }
}
process.stdout.write(`v1.${keys.fleetSecret}.${keys.sealKey}\n`);
