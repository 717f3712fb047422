/**
 * Operator commands for relay identities, talking to a running coordinator's admin API
 * with an admin key (`keys.adminKeys`):
 * - `slipstream coordinator token --relay-id ID [--ttl-ms MS]`: mints a one-time join
 *   token for that relay id and prints it (`--json` for the whole answer);
 * - `slipstream coordinator identities [--revoke ID]`: lists the enrolled identities, or
 *   revokes one (that relay only).
 * The admin key comes from `--admin-key-file FILE` or the `SLIPSTREAM_ADMIN_KEY`
 * environment variable (never a flag value, which `ps` would show).
 */
import { readFileSync } from 'node:fs';
import { bool, num, str, type FlagSpec } from '../../kit/flags.js';
import { flagCommand, type Command } from '../../kit/command.js';
import { CoordinatorApiError, CoordinatorClient } from '../../kit/coordinator-client.js';
import { CliUsageError } from '../../proto/src/errors.js';
import { JOIN_TOKEN_TTL_MS_MAX, JOIN_TOKEN_TTL_MS_MIN, LISTEN_DEFAULT } from './constants.js';

const COMMON: Record<string, FlagSpec> = {
  url: { type: 'string', valueName: 'URL', description: `The coordinator's base URL [default http://${LISTEN_DEFAULT}]` },
  'admin-key-file': { type: 'string', valueName: 'FILE', description: 'File holding an admin key (keys.adminKeys); else $SLIPSTREAM_ADMIN_KEY' },
  json: { type: 'boolean', description: 'Print the API answer as JSON' },
};

function adminClient(values: Record<string, unknown>, command: string): CoordinatorClient {
  const file = str(values as never, 'admin-key-file');
  let adminKey = process.env.SLIPSTREAM_ADMIN_KEY;
  if (file !== undefined) {
    try {
      adminKey = readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new CliUsageError('--admin-key-file', `--admin-key-file: cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  if (adminKey === undefined || adminKey === '') throw new CliUsageError('--admin-key-file', `${command} needs an admin key (keys.adminKeys): give --admin-key-file FILE or set SLIPSTREAM_ADMIN_KEY`);
  return new CoordinatorClient({ baseUrl: str(values as never, 'url') ?? `http://${LISTEN_DEFAULT}`, adminKey });
}

/** An API refusal or a network failure as one line on stderr and exit 1. */
function failed(error: unknown, err: (text: string) => void): number {
  if (error instanceof CoordinatorApiError) err(`${error.message}\n`);
  else err(`cannot reach the coordinator: ${error instanceof Error ? ((error.cause as Error | undefined)?.message ?? error.message) : String(error)}\n`);
  return 1;
}

/** `slipstream coordinator token`. */
export const tokenCommand: Command = flagCommand({
  path: 'coordinator token',
  summary: 'Mint a one-time join token that enrolls one relay id (admin key).',
  flags: {
    'relay-id': { type: 'string', valueName: 'ID', description: 'The relay id the token enrolls (and only that one); required' },
    region: { type: 'string', valueName: 'NAME', description: 'Where the relay is (with --lat, --lon): handed to it at enrollment, so `slipstream relay --join` needs no YAML' },
    lat: { type: 'number', valueName: 'DEG', min: -90, max: 90, description: 'Latitude of the relay, degrees' },
    lon: { type: 'number', valueName: 'DEG', min: -180, max: 180, description: 'Longitude of the relay, degrees' },
    'ttl-ms': { type: 'integer', valueName: 'MS', min: JOIN_TOKEN_TTL_MS_MIN, max: JOIN_TOKEN_TTL_MS_MAX, description: "Token lifetime, ms [default the coordinator's fleet.joinTokenTtlMs, 1 hour]" },
    ...COMMON,
  },
  async run({ values }, io) {
    const relayId = str(values, 'relay-id');
    if (relayId === undefined) throw new CliUsageError('--relay-id', '--relay-id: missing; the relay id the token enrolls');
    const client = adminClient(values, 'coordinator token');
    const ttlMs = num(values, 'ttl-ms');
    const region = str(values, 'region');
    const latitude = num(values, 'lat');
    const longitude = num(values, 'lon');
    const given = [region, latitude, longitude].filter((v) => v !== undefined).length;
    if (given !== 0 && given !== 3) throw new CliUsageError('--region', '--region, --lat and --lon go together');
    const placement = region !== undefined && latitude !== undefined && longitude !== undefined ? { region, latitude, longitude } : undefined;
    try {
      const answer = await client.mintJoinToken({ relayId, ...(ttlMs !== undefined ? { ttlMs } : {}), ...(placement !== undefined ? { placement } : {}) });
      if (bool(values, 'json')) io.out(`${JSON.stringify(answer)}\n`);
      else {
        io.out(`${answer.token}\n`);
        io.err(`join token for relay '${answer.relayId}', valid once until ${new Date(answer.expiresAtMs).toISOString()}: give it to that relay (tunnel.coordinatorJoinToken)\n`);
      }
      return 0;
    } catch (error) {
      return failed(error, io.err);
    }
  },
});

/** `slipstream coordinator identities`. */
export const identitiesCommand: Command = flagCommand({
  path: 'coordinator identities',
  summary: 'List enrolled relay identities, or revoke one (admin key).',
  flags: {
    revoke: { type: 'string', valueName: 'ID', description: "Revoke this relay's identity: its requests are refused until it enrolls again with a new token" },
    ...COMMON,
  },
  async run({ values }, io) {
    const client = adminClient(values, 'coordinator identities');
    const revoke = str(values, 'revoke');
    try {
      if (revoke !== undefined) {
        const answer = await client.revokeRelayIdentity(revoke);
        io.out(bool(values, 'json') ? `${JSON.stringify(answer)}\n` : `relay '${answer.relayId}': identity revoked at ${new Date(answer.revokedAtMs).toISOString()}\n`);
        return 0;
      }
      const identities = await client.relayIdentities();
      if (bool(values, 'json')) io.out(`${JSON.stringify({ identities })}\n`);
      else for (const i of identities) io.out(`${i.relayId}\t${i.publicKey}\tenrolled ${new Date(i.enrolledAtMs).toISOString()}${i.revokedAtMs !== undefined ? `\trevoked ${new Date(i.revokedAtMs).toISOString()}` : ''}\n`);
      return 0;
    } catch (error) {
      return failed(error, io.err);
    }
  },
});
