/**
 * Control-plane messages (registration, heartbeats, path reports, session setup,
 * revocations), encoded with msgpackr. The data plane never uses this: it has the
 * fixed binary header (header.ts).
 *
 * Every message is a msgpack map `{ v: CONTROL_VERSION, t: <type>, ...fields }`.
 * Decoding is strict: the body must be one msgpack value, a map with a known `v`
 * and `t`, every declared field present with the declared type and range (optional
 * fields may be absent), and no undeclared fields. Anything else is a typed
 * {@link ParseFailure}, never an exception, whatever the bytes.
 *
 * To add a message: add its schema to {@link controlSchemas} and its field types to
 * {@link ControlMessageFields}. Never change the meaning of an existing field; bump
 * {@link CONTROL_VERSION} only for incompatible changes.
 */
import { Packr } from 'msgpackr';
import { ParseFailure, type ParseFailureValue } from './errors.js';

/** The control-message version this build writes and accepts. */
export const CONTROL_VERSION = 1;
/** Largest encoded control message accepted, in bytes (fits one datagram with headroom). */
export const CONTROL_BYTES_MAX = 16_384;
/** Longest string field accepted, in characters, unless the field says otherwise. */
const STRING_CHARS_MAX = 256;
/** Longest session-open cookie accepted, bytes (relays send 16). */
export const COOKIE_BYTES_MAX = 32;
/** Most elements accepted in an array field. */
const ARRAY_ITEMS_MAX = 1024;

/** How one field is checked. */
type FieldSpec =
  | { kind: 'string'; maxChars?: number; pattern?: RegExp; optional?: boolean }
  | { kind: 'number'; min: number; max: number; integer?: boolean; optional?: boolean }
  | { kind: 'boolean'; optional?: boolean }
  | { kind: 'bytes'; maxBytes: number; optional?: boolean }
  | { kind: 'strings'; maxItems?: number; maxChars?: number; pattern?: RegExp; optional?: boolean };

const U32_MAX = 0xffff_ffff;
const relayId: FieldSpec = { kind: 'string', maxChars: 64, pattern: /^[A-Za-z0-9._-]+$/ };
const sessionIdHex = /^[0-9a-f]{16}$/;

/** The fields of every control message, by type. */
export interface ControlMessageFields {
  /** Relay → coordinator: join the registry. */
  relayRegister: {
    relayId: string;
    region: string;
    /** Degrees, −90..90. */
    latitude: number;
    /** Degrees, −180..180. */
    longitude: number;
    /** `host:port` clients tunnel to. */
    tunnelAddress: string;
    /** `host:port` that answers probes. */
    probeAddress: string;
    /** Sessions the relay accepts at most. */
    capacitySessions: number;
    /** The relay's WebRTC signaling URL, when it has a browser entry. */
    webrtcUrl?: string;
  };
  /** Relay → coordinator: still alive, with load. */
  relayHeartbeat: {
    relayId: string;
    sessions: number;
    packetsPerSecond: number;
    /** CPU busy fraction 0..1. */
    cpuFraction: number;
    draining: boolean;
  };
  /** Relay or SDK → coordinator: what a path measured. */
  pathReport: {
    reporterId: string;
    targetId: string;
    rttMs: number;
    jitterMs: number;
    /** Fraction 0..1. */
    lossFraction: number;
    samples: number;
  };
  /** SDK → relay: open (or resume) a tunnel session with a signed ticket. */
  sessionOpen: {
    ticket: Uint8Array;
    /** FEC modes the client accepts, best first (e.g. `sw`, `dup`, `rs`, `off`). */
    fecModes: string[];
    /**
     * The session's latency budget, ms, when the client sets one: the relay's adaptive
     * `sw` controller keeps the downstream to it. Absent: the relay's own
     * (`tunnel.fec.latencyBudgetMs`). Only sent when set, since relays before it refuse
     * unknown fields.
     */
    latencyBudgetMs?: number;
    /**
     * The cookie of the relay's last {@link ControlMessageFields.sessionRetry}, echoed:
     * proof that the client receives at the address it sends from. Only sent to a relay
     * that asked for one (only relays that know this field ask; older ones refuse
     * unknown fields).
     */
    cookie?: Uint8Array;
    /**
     * Entry relay → exit relay only: the player's address as the entry sees it
     * (`IP:port`, `[IPv6]:port`), added to the open it forwards when its
     * `tunnel.proxyProtocol` is set, so the exit's origin header names the player, not
     * the entry. An exit believes it only from a fleet relay (`tunnel.peerCidrs` or the
     * fleet list); SDKs never send it, and relays ignore it from anyone else.
     */
    client?: string;
  };
  /**
   * Relay → SDK: the relay is over its ticket-verification budget and wants proof of
   * the client's address before it spends a signature check (QUIC Retry, RFC 9000
   * §8.1.2; DTLS HelloVerifyRequest, RFC 6347 §4.2.1): the client sends its
   * `sessionOpen` again with this `cookie`. Never larger than the open it answers.
   */
  sessionRetry: {
    /** Opaque to the client (the relay's MAC over its address and time), at most {@link COOKIE_BYTES_MAX} bytes. */
    cookie: Uint8Array;
  };
  /** Relay → SDK: the session is open. */
  sessionAccept: {
    /** 16 lowercase hex digits. */
    sessionId: string;
    fecMode: string;
    /**
     * The relay that terminates the session (holds its origin-facing socket and its
     * FEC), when that is an exit relay behind the one the client talks to. Absent: the
     * relay that sent the accept terminates it. Every entry of one exit carries the
     * exit's downstream numbering, so the SDK shares one FEC receiver among them.
     */
    exit?: string;
  };
  /** Relay → SDK: the session was refused; `reason` is a stable `SLIP_ERR_*` code. */
  sessionReject: {
    reason: string;
    message: string;
  };
  /** Coordinator → relay: end these sessions now. */
  revoke: {
    sessionIds: string[];
  };
  /**
   * Relay ↔ SDK, inside a tunnel session: what the FEC receiver of one direction
   * measured over its last interval, so that the far side's sender (and its adaptive
   * controller) follows the loss of the direction it actually sends on. Counters are
   * the receiver's `FecIntervalStats` (proto/src/fec/receiver.ts).
   */
  fecStats: {
    /** Length of the interval, ms. */
    intervalMs: number;
    received: number;
    recovered: number;
    unrecoverable: number;
    duplicates: number;
    parityReceived: number;
    wirePackets: number;
    wireLost: number;
    lossBursts: number;
  };
}

/** The name of a control message type. */
export type ControlMessageType = keyof ControlMessageFields;

/** A control message: its type tag plus its fields. */
export type ControlMessage = { [T in ControlMessageType]: { type: T } & ControlMessageFields[T] }[ControlMessageType];

/** Per-type field schemas; the single source of truth for validation. */
export const controlSchemas: { readonly [T in ControlMessageType]: Readonly<Record<keyof ControlMessageFields[T], FieldSpec>> } = {
  relayRegister: {
    relayId,
    region: { kind: 'string', maxChars: 64 },
    latitude: { kind: 'number', min: -90, max: 90 },
    longitude: { kind: 'number', min: -180, max: 180 },
    tunnelAddress: { kind: 'string', maxChars: 128 },
    probeAddress: { kind: 'string', maxChars: 128 },
    capacitySessions: { kind: 'number', min: 0, max: U32_MAX, integer: true },
    webrtcUrl: { kind: 'string', maxChars: 256, pattern: /^https?:\/\/[^\s/]+\/\S*$/, optional: true },
  },
  relayHeartbeat: {
    relayId,
    sessions: { kind: 'number', min: 0, max: U32_MAX, integer: true },
    packetsPerSecond: { kind: 'number', min: 0, max: 1e9 },
    cpuFraction: { kind: 'number', min: 0, max: 1 },
    draining: { kind: 'boolean' },
  },
  pathReport: {
    reporterId: relayId,
    targetId: relayId,
    rttMs: { kind: 'number', min: 0, max: 60_000 },
    jitterMs: { kind: 'number', min: 0, max: 60_000 },
    lossFraction: { kind: 'number', min: 0, max: 1 },
    samples: { kind: 'number', min: 0, max: U32_MAX, integer: true },
  },
  sessionOpen: {
    ticket: { kind: 'bytes', maxBytes: 4096 },
    fecModes: { kind: 'strings', maxItems: 8, maxChars: 16 },
    latencyBudgetMs: { kind: 'number', min: 0, max: 1000, optional: true },
    cookie: { kind: 'bytes', maxBytes: COOKIE_BYTES_MAX, optional: true },
    client: { kind: 'string', maxChars: 64, optional: true, pattern: /^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):\d{1,5}$/ },
  },
  sessionRetry: {
    cookie: { kind: 'bytes', maxBytes: COOKIE_BYTES_MAX },
  },
  sessionAccept: {
    sessionId: { kind: 'string', pattern: sessionIdHex },
    fecMode: { kind: 'string', maxChars: 16 },
    exit: { kind: 'string', maxChars: 64, pattern: /^[A-Za-z0-9._-]+$/, optional: true },
  },
  sessionReject: {
    reason: { kind: 'string', maxChars: 64, pattern: /^SLIP_ERR_[A-Z_]+$/ },
    message: { kind: 'string', maxChars: 1024 },
  },
  revoke: {
    sessionIds: { kind: 'strings', maxItems: ARRAY_ITEMS_MAX, pattern: sessionIdHex },
  },
  fecStats: {
    intervalMs: { kind: 'number', min: 0, max: 3_600_000 },
    received: { kind: 'number', min: 0, max: U32_MAX, integer: true },
    recovered: { kind: 'number', min: 0, max: U32_MAX, integer: true },
    unrecoverable: { kind: 'number', min: 0, max: U32_MAX, integer: true },
    duplicates: { kind: 'number', min: 0, max: U32_MAX, integer: true },
    parityReceived: { kind: 'number', min: 0, max: U32_MAX, integer: true },
    wirePackets: { kind: 'number', min: 0, max: U32_MAX, integer: true },
    wireLost: { kind: 'number', min: 0, max: U32_MAX, integer: true },
    lossBursts: { kind: 'number', min: 0, max: U32_MAX, integer: true },
  },
};

// Plain maps both ways: records and structured clones would let a peer make us build
// arbitrary object graphs, and would not interoperate with other msgpack libraries.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false });

function checkString(value: unknown, maxChars: number, pattern: RegExp | undefined): boolean {
  return typeof value === 'string' && value.length <= maxChars && (pattern === undefined || pattern.test(value));
}

function checkField(value: unknown, spec: FieldSpec): boolean {
  if (value === undefined) return spec.optional === true;
  switch (spec.kind) {
    case 'string':
      return checkString(value, spec.maxChars ?? STRING_CHARS_MAX, spec.pattern);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value) && value >= spec.min && value <= spec.max && (!spec.integer || Number.isInteger(value));
    case 'boolean':
      return typeof value === 'boolean';
    case 'bytes':
      return value instanceof Uint8Array && value.length <= spec.maxBytes;
    case 'strings':
      return Array.isArray(value) && value.length <= (spec.maxItems ?? ARRAY_ITEMS_MAX) && value.every((item) => checkString(item, spec.maxChars ?? STRING_CHARS_MAX, spec.pattern));
  }
}

/**
 * Returns the name of the first field of `message` that does not match its schema,
 * or undefined when the message is valid.
 */
export function invalidControlField(message: Record<string, unknown>, type: ControlMessageType): string | undefined {
  const schema = controlSchemas[type] as Readonly<Record<string, FieldSpec>>;
  for (const [name, spec] of Object.entries(schema)) {
    if (!checkField(message[name], spec)) return name;
  }
  for (const name of Object.keys(message)) {
    if (name !== 'type' && !Object.prototype.hasOwnProperty.call(schema, name)) return name;
  }
  return undefined;
}

/**
 * Encodes a control message. Invalid messages are programmer errors and throw
 * RangeError naming the field.
 */
export function encodeControl(message: ControlMessage): Uint8Array {
  const { type, ...fields } = message;
  if (!Object.prototype.hasOwnProperty.call(controlSchemas, type)) throw new RangeError(`encodeControl: unknown message type '${String(type)}'`);
  const bad = invalidControlField(message as unknown as Record<string, unknown>, type);
  if (bad !== undefined) throw new RangeError(`encodeControl: ${type}.${bad} does not match its schema`);
  const encoded = packr.pack({ v: CONTROL_VERSION, t: type, ...fields });
  if (encoded.length > CONTROL_BYTES_MAX) throw new RangeError(`encodeControl: ${type} encodes to ${encoded.length} bytes, more than ${CONTROL_BYTES_MAX}`);
  return encoded;
}

/** Result of {@link decodeControl}: the message, or why the bytes were refused. */
export type ControlDecodeResult = { ok: true; message: ControlMessage } | { ok: false; failure: ParseFailureValue; detail: string };

/** Decodes a control message from untrusted bytes. Never throws. */
export function decodeControl(bytes: Uint8Array): ControlDecodeResult {
  if (bytes.length > CONTROL_BYTES_MAX) return { ok: false, failure: ParseFailure.TooLong, detail: `${bytes.length} bytes > ${CONTROL_BYTES_MAX}` };
  if (bytes.length === 0) return { ok: false, failure: ParseFailure.TooShort, detail: 'empty body' };
  let decoded: unknown;
  try {
    // unpack() refuses trailing bytes, so one datagram carries exactly one message.
    decoded = packr.unpack(bytes);
  } catch (error) {
    return { ok: false, failure: ParseFailure.BadEncoding, detail: error instanceof Error ? error.message : 'undecodable' };
  }
  // Only a plain map will do: arrays, byte strings and extension types (timestamps…) are refused.
  if (decoded === null || typeof decoded !== 'object' || Object.getPrototypeOf(decoded) !== Object.prototype) {
    return { ok: false, failure: ParseFailure.BadShape, detail: 'not a map' };
  }
  const { v, t, ...fields } = decoded as Record<string, unknown>;
  if (v !== CONTROL_VERSION) return { ok: false, failure: ParseFailure.BadVersion, detail: `version ${String(v)}` };
  if (typeof t !== 'string' || !Object.prototype.hasOwnProperty.call(controlSchemas, t)) return { ok: false, failure: ParseFailure.BadType, detail: `type ${String(t)}` };
  const type = t as ControlMessageType;
  if ('type' in fields) return { ok: false, failure: ParseFailure.BadShape, detail: `${type}: unexpected field 'type'` };
  const bad = invalidControlField(fields, type);
  if (bad !== undefined) return { ok: false, failure: ParseFailure.BadShape, detail: `${type}.${bad}` };
  return { ok: true, message: { type, ...fields } as ControlMessage };
}
