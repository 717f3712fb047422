/**
 * The coordinator's relay API (register, heartbeat, fleet list, path reports, the
 * revocation feed's long poll) carried
 * over the simulator's datagrams: one msgpack map per call and per answer, tied by the
 * call's `id`. Production speaks the same calls as JSON over HTTP
 * (`kit/coordinator-client.ts`); in the simulator the relay's fleet core
 * (`relay/src/core/fleet-agent.ts`) reaches the real coordinator core this way
 * (`./fleet-driver.ts` → `./coordinator-driver.ts`). A lost datagram is a
 * request that timed out, as an HTTP request would. Bodies are the HTTP API's JSON
 * bodies, unchecked here: both ends are this repository's code on a virtual network.
 */
import { Packr } from 'msgpackr';

/** The envelope's version. */
const SIM_API_VERSION = 1;

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false });

/** The API calls the simulator carries, named as the relay's fleet core names its requests. */
export type SimApiKind = 'register' | 'heartbeat' | 'fleet' | 'reports' | 'revocations';

/** A call: `id` (chosen by the caller) comes back on its answer. */
export interface SimApiCall {
  readonly id: number;
  readonly kind: SimApiKind;
  /** The HTTP API's request body (`{}` for the fleet list; `{ sinceMs, waitMs }` for the revocation feed). */
  readonly body: Record<string, unknown>;
}

/** An answer: the HTTP API's answer body, or its error (`status`, `code`, `message`). */
export type SimApiAnswer = { readonly id: number; readonly ok: true; readonly body: unknown } | { readonly id: number; readonly ok: false; readonly status: number; readonly code: string; readonly message: string };

const KINDS: readonly string[] = ['register', 'heartbeat', 'fleet', 'reports', 'revocations'];

/** Encodes a call. */
export function encodeSimApiCall(call: SimApiCall): Uint8Array {
  return packr.pack({ v: SIM_API_VERSION, t: 'apiCall', ...call });
}

/** Encodes an answer. */
export function encodeSimApiAnswer(answer: SimApiAnswer): Uint8Array {
  return packr.pack({ v: SIM_API_VERSION, t: 'apiAnswer', ...answer });
}

/** Decodes a call; undefined for anything else (a control message, junk). */
export function decodeSimApiCall(bytes: Uint8Array): SimApiCall | undefined {
  const m = unpack(bytes, 'apiCall');
  if (m === undefined || typeof m.id !== 'number' || typeof m.kind !== 'string' || !KINDS.includes(m.kind) || m.body === null || typeof m.body !== 'object') return undefined;
  return { id: m.id, kind: m.kind as SimApiKind, body: m.body as Record<string, unknown> };
}

/** Decodes an answer; undefined for anything else. */
export function decodeSimApiAnswer(bytes: Uint8Array): SimApiAnswer | undefined {
  const m = unpack(bytes, 'apiAnswer');
  if (m === undefined || typeof m.id !== 'number') return undefined;
  if (m.ok === true) return { id: m.id, ok: true, body: m.body };
  return { id: m.id, ok: false, status: Number(m.status), code: String(m.code), message: String(m.message) };
}

function unpack(bytes: Uint8Array, type: string): Record<string, unknown> | undefined {
  let decoded: unknown;
  try {
    decoded = packr.unpack(bytes);
  } catch {
    return undefined;
  }
  if (decoded === null || typeof decoded !== 'object') return undefined;
  const m = decoded as Record<string, unknown>;
  return m.v === SIM_API_VERSION && m.t === type ? m : undefined;
}
