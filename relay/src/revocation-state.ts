/**
 * The revocation list a relay last held from its coordinator's feed, kept on disk
 * (`tunnel.revocationStateFile`) so that a relay (re)starting while the coordinator is
 * unreachable still refuses the tickets revoked before it stopped, and knows how old that
 * list is (`tunnel.revocationMaxAgeMs`). The file is JSON:
 * `{ "version": 1, "cursorMs", "currentAtMs", "revocations": [[sessionId, expiresAtMs], …] }`,
 * written whole to a temporary file and renamed over the old one (a crash leaves the old
 * file or the new one, never half of one). A file that cannot be read or parsed is
 * reported and treated as absent: the relay then starts with no list (stale until its feed
 * answers), never crashes.
 */
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';

/** Format version written and accepted. */
export const REVOCATION_STATE_VERSION = 1;
/** Largest state file read, bytes (about 500 000 entries): a bigger one is refused as corrupt. */
export const REVOCATION_STATE_BYTES_MAX = 32 * 1024 * 1024;
/** Most revocations kept in the file; beyond it the ones expiring first are dropped (they matter least). */
export const REVOCATION_STATE_ENTRIES_MAX = 500_000;

/** What the file holds. */
export interface RevocationState {
  /** The feed's cursor when written (the coordinator's receive time of the last entry seen), ms. */
  readonly cursorMs: number;
  /** When the feed last answered (the list was complete then), Unix ms. */
  readonly currentAtMs: number;
  /** Revoked session ids (16 hex digits) → when their revocation expires, Unix ms. */
  readonly revocations: ReadonlyMap<string, number>;
}

/** The outcome of {@link readRevocationState}: the state, none (no file), or why the file was not usable. */
export type RevocationStateRead = { readonly ok: true; readonly state: RevocationState | undefined } | { readonly ok: false; readonly reason: string };

const SESSION_ID = /^[0-9a-f]{16}$/;

/** Parses the file's text; throws an Error saying what is wrong. Expired entries (before `wallNowMs`) are dropped. */
export function parseRevocationState(text: string, wallNowMs: number): RevocationState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error('not JSON');
  }
  if (typeof value !== 'object' || value === null) throw new Error('not a JSON object');
  const o = value as Record<string, unknown>;
  if (o.version !== REVOCATION_STATE_VERSION) throw new Error(`version ${JSON.stringify(o.version)}; expected ${REVOCATION_STATE_VERSION}`);
  const finite = (key: string): number => {
    const n = o[key];
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new Error(`${key} is not a non-negative number`);
    return n;
  };
  const cursorMs = finite('cursorMs');
  const currentAtMs = finite('currentAtMs');
  if (!Array.isArray(o.revocations)) throw new Error('revocations is not an array');
  if (o.revocations.length > REVOCATION_STATE_ENTRIES_MAX) throw new Error(`${o.revocations.length} revocations; expected at most ${REVOCATION_STATE_ENTRIES_MAX}`);
  const revocations = new Map<string, number>();
  for (const [i, entry] of (o.revocations as unknown[]).entries()) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || !SESSION_ID.test(entry[0]) || typeof entry[1] !== 'number' || !Number.isFinite(entry[1])) {
      throw new Error(`revocations[${i}] is not [16-hex session id, expiresAtMs]`);
    }
    if (entry[1] > wallNowMs) revocations.set(entry[0], entry[1]);
  }
  return { cursorMs, currentAtMs, revocations };
}

/** The file's text for `state`, at most {@link REVOCATION_STATE_ENTRIES_MAX} entries (the latest-expiring kept). */
export function formatRevocationState(state: RevocationState): string {
  let entries = [...state.revocations];
  if (entries.length > REVOCATION_STATE_ENTRIES_MAX) entries = entries.sort((a, b) => b[1] - a[1]).slice(0, REVOCATION_STATE_ENTRIES_MAX);
  return JSON.stringify({ version: REVOCATION_STATE_VERSION, cursorMs: state.cursorMs, currentAtMs: state.currentAtMs, revocations: entries });
}

/**
 * Reads the state file synchronously (it is read once, before the tunnel opens). A
 * missing file is `{ ok: true, state: undefined }`; an unreadable, oversized or malformed
 * one is `{ ok: false, reason }`.
 */
export function readRevocationState(file: string, wallNowMs: number): RevocationStateRead {
  try {
    const info = statSync(file);
    if (!info.isFile()) return { ok: false, reason: 'not a regular file' };
    if (info.size > REVOCATION_STATE_BYTES_MAX) return { ok: false, reason: `${info.size} bytes; expected at most ${REVOCATION_STATE_BYTES_MAX}` };
    return { ok: true, state: parseRevocationState(readFileSync(file, 'utf8'), wallNowMs) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: true, state: undefined };
    return { ok: false, reason: code ?? (error instanceof Error ? error.message : String(error)) };
  }
}

/**
 * Writes `state` atomically (temporary file in the same directory, then rename), unless
 * `cancelled()` says so before the rename (a shutdown wrote a newer state meanwhile).
 * Rejects with the file system's error.
 */
export async function writeRevocationState(file: string, state: RevocationState, cancelled: () => boolean = () => false): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, formatRevocationState(state), { mode: 0o600 });
  if (cancelled()) return;
  await rename(temporary, file);
}

/** {@link writeRevocationState}, synchronously (at shutdown, when no later tick may run). Throws the file system's error. */
export function writeRevocationStateSync(file: string, state: RevocationState): void {
  // Its own temporary name: an asynchronous write may still be in flight.
  const temporary = `${file}.${process.pid}.sync.tmp`;
  writeFileSync(temporary, formatRevocationState(state), { mode: 0o600 });
  renameSync(temporary, file);
}

/** Least time between two writes of the state file, ms: a burst of revocations is one write. */
export const REVOCATION_STATE_WRITE_INTERVAL_MS = 1000;

/** What {@link FeedRevocationKeeper} needs of the relay. */
export interface FeedRevocationHost {
  readonly logger: Logger;
  /** Wall clock, Unix ms. */
  wallClockMs(): number;
  /** Monotonic clock, ms. */
  nowMs(): number;
  /** The state file now configured (a reload may change it), or undefined. */
  stateFile(): string | undefined;
  /** Hands persisted revocations to the core (before the tunnel opens). */
  revoke(sessionId: string, expiresAtMs: number): void;
  /** Tells the core its list is complete as of `wallMs`. */
  setCurrent(wallMs: number): void;
  /** The core's view: the list's age and whether it is stale, with the policy and limit; undefined when no feed is followed. */
  feedState(): { readonly ageMs: number; readonly stale: boolean; readonly policy: 'refuse' | 'admit'; readonly maxAgeMs: number; readonly staleRefused: number; readonly staleAdmitted: number } | undefined;
}

/**
 * The driver side of the feed's revocation list across restarts: it loads the state
 * file before the tunnel opens, keeps what the feed said (entries, cursor, when it last
 * answered), writes it back at most once per {@link REVOCATION_STATE_WRITE_INTERVAL_MS}
 * and at shutdown, and logs each change between a current and a stale list
 * (`revocations_stale`, naming the policy; `revocations_current`).
 */
export class FeedRevocationKeeper {
  private readonly entries = new Map<string, number>();
  private cursorMs = 0;
  private currentAtMs = Number.NEGATIVE_INFINITY;
  private writing = false;
  private dirty = false;
  private lastWriteAtMs = Number.NEGATIVE_INFINITY;
  private writeTimer: NodeJS.Timeout | undefined;
  private writeError = '';
  /** The stale state last logged (undefined before the first check). */
  private loggedStale: boolean | undefined;
  private closed = false;

  constructor(private readonly host: FeedRevocationHost) {}

  /** The cursor a (re)started feed should ask from, ms: the feed's latest, else the persisted one, else 0. */
  get startCursorMs(): number {
    return this.cursorMs;
  }

  /** Reads the state file, if configured, into the core. Never throws: a bad file is logged and ignored. */
  load(): void {
    const file = this.host.stateFile();
    if (file === undefined) return;
    const read = readRevocationState(file, this.host.wallClockMs());
    if (!read.ok) {
      this.host.logger.warn({ event: 'revocation_state_unreadable', file, err: read.reason }, 'revocation state file not usable; starting with no revocation list (it is rewritten once the feed answers)');
      return;
    }
    if (read.state === undefined) {
      this.host.logger.info({ event: 'revocation_state', file, loaded: 0 }, 'no revocation state file yet; starting with no revocation list');
      return;
    }
    const state = read.state;
    for (const [id, expiresAtMs] of state.revocations) {
      this.entries.set(id, expiresAtMs);
      this.host.revoke(id, expiresAtMs);
    }
    this.cursorMs = state.cursorMs;
    this.currentAtMs = state.currentAtMs;
    this.host.setCurrent(state.currentAtMs);
    this.host.logger.info({ event: 'revocation_state', file, loaded: state.revocations.size, cursorMs: state.cursorMs, ageMs: Math.max(0, this.host.wallClockMs() - state.currentAtMs) }, 'revocation list loaded from the state file');
  }

  /** The feed reported revocations. */
  onRevoked(sessionId: string, expiresAtMs: number): void {
    this.entries.set(sessionId, Math.max(expiresAtMs, this.entries.get(sessionId) ?? 0));
  }

  /** The feed answered: the list is complete as of `wallNowMs`, up to `cursorMs`. */
  onAnswered(wallNowMs: number, cursorMs: number): void {
    this.cursorMs = cursorMs;
    this.currentAtMs = Math.max(this.currentAtMs, wallNowMs);
    this.host.setCurrent(wallNowMs);
    this.check();
    this.scheduleWrite();
  }

  /** Logs a change between a current and a stale list (and the state at the first call). */
  check(): void {
    const state = this.host.feedState();
    if (state === undefined || this.closed) {
      this.loggedStale = undefined;
      return;
    }
    if (state.stale === this.loggedStale) return;
    const first = this.loggedStale === undefined;
    this.loggedStale = state.stale;
    const ageMs = Number.isFinite(state.ageMs) ? Math.round(state.ageMs) : null;
    if (state.stale) {
      const what = state.policy === 'refuse' ? 'refusing new tunnel sessions (SLIP_ERR_RELAY_REVOCATIONS_STALE) until the coordinator revocation feed answers' : 'ADMITTING new tunnel sessions unchecked against revocations made since (tunnel.revocationStalePolicy: admit)';
      this.host.logger.warn({ event: 'revocations_stale', policy: state.policy, maxAgeMs: state.maxAgeMs, ageMs }, `no revocation list newer than tunnel.revocationMaxAgeMs (${state.maxAgeMs} ms): ${what}`);
    } else if (!first) {
      this.host.logger.info({ event: 'revocations_current', policy: state.policy, ageMs, staleRefused: state.staleRefused, staleAdmitted: state.staleAdmitted }, 'revocation list current again: new tunnel sessions are checked against it');
    }
  }

  /** Writes the state now, synchronously (shutdown); stops further writes. Never throws. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.writeTimer !== undefined) clearTimeout(this.writeTimer);
    const file = this.host.stateFile();
    if (file === undefined || !Number.isFinite(this.currentAtMs)) return;
    try {
      writeRevocationStateSync(file, this.snapshot());
    } catch (error) {
      this.reportWriteError(file, error);
    }
  }

  private snapshot(): RevocationState {
    const wallMs = this.host.wallClockMs();
    for (const [id, expiresAtMs] of this.entries) if (expiresAtMs <= wallMs) this.entries.delete(id);
    return { cursorMs: this.cursorMs, currentAtMs: this.currentAtMs, revocations: this.entries };
  }

  private scheduleWrite(): void {
    if (this.closed || this.host.stateFile() === undefined) return;
    this.dirty = true;
    if (this.writing || this.writeTimer !== undefined) return;
    const waitMs = this.lastWriteAtMs + REVOCATION_STATE_WRITE_INTERVAL_MS - this.host.nowMs();
    if (waitMs > 0) {
      this.writeTimer = setTimeout(() => {
        this.writeTimer = undefined;
        this.write();
      }, waitMs);
      this.writeTimer.unref();
      return;
    }
    this.write();
  }

  private write(): void {
    const file = this.host.stateFile();
    if (this.closed || file === undefined || !this.dirty) return;
    this.dirty = false;
    this.writing = true;
    this.lastWriteAtMs = this.host.nowMs();
    writeRevocationState(file, this.snapshot(), () => this.closed).then(
      () => {
        this.writing = false;
        if (this.writeError !== '') this.host.logger.info({ event: 'revocation_state_written', file }, 'revocation state file written again');
        this.writeError = '';
        if (this.dirty) this.scheduleWrite();
      },
      (error: unknown) => {
        this.writing = false;
        this.reportWriteError(file, error);
        if (this.dirty) this.scheduleWrite();
      },
    );
  }

  /** One warning per distinct failure (a read-only directory fails every write the same way). */
  private reportWriteError(file: string, error: unknown): void {
    const code = (error as NodeJS.ErrnoException | undefined)?.code ?? (error instanceof Error ? error.message : String(error));
    if (code === this.writeError) return;
    this.writeError = code;
    this.host.logger.warn({ event: 'revocation_state_write_failed', file, err: code }, 'cannot write the revocation state file; a restart while the coordinator is unreachable will start with no revocation list');
  }
}
