/**
 * Request validation of the coordinator: the rules and the checker are proto's
 * (`proto/src/api/validate.ts`, declared once with the API contract); what needs the
 * host's IP parser (advertised endpoints) is checked here. 400 answers look like
 * `{"error":{"code":"invalid_field","field":"reports[3].rttMs","reason":"-1 is out of range; expected a number from 0 to 60000"}}`.
 * Where proto already declares a control message's fields (relay registration and
 * heartbeat), those schemas are the single source of truth; see {@link checkControl}.
 */
import { isIP } from 'node:net';
import { check, checkControl, describeValue, RELAY_STATUS_RULE, type Invalid } from '../../proto/src/api/validate.js';

export { check, checkControl, describeRule, describeValue, type FieldRule, type Invalid } from '../../proto/src/api/validate.js';

/** What {@link checkEndpoint} accepts, for messages. */
export const ENDPOINT_TEXT = 'an IP literal and a port from 1 to 65535: "203.0.113.7:4433" or "[2001:db8::7]:4433"';

/**
 * Checks a relay's advertised endpoint (`tunnelAddress`, `probeAddress`): an IPv4
 * literal or a bracketed IPv6 literal, a colon, and a decimal port from 1 to 65535.
 * Clients dial it as given, so host names, zone ids and port 0 are refused here rather
 * than failing later in every SDK that receives the route. (proto's schema only bounds
 * the length: an IP-literal pattern is not something its property tests can generate.)
 */
export function checkEndpoint(value: unknown, field: string): Invalid | undefined {
  if (typeof value !== 'string') return { field, reason: `${describeValue(value)} is not a string; expected ${ENDPOINT_TEXT}` };
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : 0;
  const ok = m !== null && (m[1] !== undefined ? isIP(m[1]) === 6 : isIP(m[2]!) === 4) && port >= 1 && port <= 65_535 && !/^0\d/.test(m[3]!);
  return ok ? undefined : { field, reason: `${describeValue(value)} is not accepted; expected ${ENDPOINT_TEXT}` };
}

/**
 * Checks a `POST /v1/relays/heartbeat` body: the control schema's `relayHeartbeat`
 * fields (proto/src/control.ts), plus the optional `status` (the relay's players and L4
 * rules, `RelayStatus` in proto/src/api/contract.ts), which the control schema does not
 * carry: bounded lists (16 origins, 32 rules of 16 origins), counts, fractions 0..1.
 * A refused field is named with its path, e.g. `status.origins[0].lossBeforeFec`.
 */
export function checkHeartbeat(body: Record<string, unknown>): Invalid | undefined {
  if (!Object.prototype.hasOwnProperty.call(body, 'status')) return checkControl(body, 'relayHeartbeat');
  const { status, ...rest } = body;
  return checkControl(rest, 'relayHeartbeat') ?? check(status, { ...RELAY_STATUS_RULE, optional: false }, 'status');
}
