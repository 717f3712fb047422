/**
 * Where a relay's revocations come from, driven for {@link Relay} (relay.ts): the
 * revocation file (`revocationFile`, polled every `revocationPollMs`), the coordinator's
 * revocation feed (long poll, when a coordinator URL is configured) with the list kept
 * across restarts (`tunnel.revocationStateFile`, see revocation-state.ts), and the
 * staleness check of that list. Revocations end live sessions at once (the core's
 * `setRevoked` / `revoke`); each change is followed by the relay's flush.
 */
import { readFile, stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { CoordinatorClient } from '../../kit/coordinator-client.js';
import type { RelayConfig } from './config.js';
import { REVOCATION_FEED_OVERLAP_MS_DEFAULT, REVOCATION_FEED_WAIT_MS_DEFAULT } from './core/revocation-feed.js';
import type { RelayCore } from './core/relay-core.js';
import { identityOption } from './fleet.js';
import { followRevocationFeed, type RevocationFeedFollower } from './revocation-feed.js';
import { FeedRevocationKeeper } from './revocation-state.js';

/**
 * How long start waits for the revocation feed's first answer (or failure) when the relay
 * holds no current list, ms: with a reachable coordinator the relay is ready to admit
 * sessions when `relay started` is logged; an unreachable one costs at most this.
 */
const REVOCATION_FIRST_ANSWER_WAIT_MS = 3000;
/** How often the revocation list's staleness is checked for the log, ms. */
const REVOCATION_STALE_CHECK_MS = 1000;

/** What {@link RelayRevocations} needs of its relay. */
export interface RelayRevocationsHost {
  /** The core whose revocation list the file and the feed fill. */
  readonly core: RelayCore;
  /** Where the watch and feed events are logged. */
  readonly logger: Logger;
  /** Unix ms. */
  readonly wallClockMs: () => number;
  /** The running configuration (changes at reload). */
  readonly config: () => RelayConfig;
  /** Drains the core after a change (sessions ended send their Close). */
  readonly flush: () => void;
  /** True once the relay closed: late answers are dropped. */
  readonly closed: () => boolean;
}

/** The revocation file watcher, the coordinator feed follower and the feed's kept list of one relay. */
export class RelayRevocations {
  private revocationTimer: NodeJS.Timeout | undefined;
  private revocationStamp = '';
  private follower: RevocationFeedFollower | undefined;
  /** The feed's revocation list across restarts (`tunnel.revocationStateFile`) and its staleness log. */
  private readonly feedRevocations: FeedRevocationKeeper;
  private staleCheckTimer: NodeJS.Timeout | undefined;
  /** Called at the feed's next answer or failure (start waits for the first). */
  private feedHeard: (() => void) | undefined;
  /** The coordinator URL and fleet secret the revocation feed follows with ('' when none). */
  private followedKey = '';

  /** Sets up the feed's kept list only; the file watch and the feed start later, as the configuration says. */
  constructor(private readonly host: RelayRevocationsHost) {
    const core = host.core;
    this.feedRevocations = new FeedRevocationKeeper({
      logger: host.logger,
      wallClockMs: host.wallClockMs,
      nowMs: () => performance.now(),
      stateFile: () => (host.config().coordinatorUrl === undefined ? undefined : host.config().revocationStateFile),
      revoke: (id, expiresAtMs) => core.revoke(performance.now(), [id], expiresAtMs),
      setCurrent: (wallMs) => core.setRevocationsCurrent(wallMs),
      feedState: () => {
        const feed = host.config().core.tunnel?.revocationFeed;
        if (feed === undefined) return undefined;
        const state = core.revocationFeedState;
        return { ...state, policy: feed.stalePolicy, maxAgeMs: feed.maxAgeMs };
      },
    });
  }

  /** Loads the list the relay last held (state file), before the tunnel opens: a ticket revoked before a restart stays refused while the coordinator is unreachable. */
  load(): void {
    this.feedRevocations.load();
  }

  /**
   * Starts the file watcher and the feed; when the relay holds no current list, waits
   * for the feed's first answer or failure (at most {@link REVOCATION_FIRST_ANSWER_WAIT_MS});
   * then logs whether new sessions are refused for a stale list and checks it every second.
   */
  async start(): Promise<void> {
    this.watchFile();
    const heard = new Promise<void>((resolve) => (this.feedHeard = resolve));
    this.follow();
    if (this.host.core.revocationFeedState.stale) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([heard, new Promise<void>((resolve) => (timer = setTimeout(resolve, REVOCATION_FIRST_ANSWER_WAIT_MS)))]);
      clearTimeout(timer);
    }
    this.feedHeard = undefined;
    // Says before `relay started` whether new sessions are refused (or admitted) for a stale list.
    this.feedRevocations.check();
    this.staleCheckTimer = setInterval(() => this.feedRevocations.check(), REVOCATION_STALE_CHECK_MS);
    this.staleCheckTimer.unref();
  }

  /** Reload: a changed `revocationFile` or `revocationPollMs` (compared with `previous`) restarts the watcher. */
  reload(previous: RelayConfig, config: RelayConfig): void {
    if (config.revocationFile === previous.revocationFile && config.revocationPollMs === previous.revocationPollMs) return;
    this.revocationStamp = '';
    this.watchFile();
  }

  /** Polls the revocation file (`revocationFile`), when configured. */
  private watchFile(): void {
    const file = this.host.config().revocationFile;
    const { core, logger } = this.host;
    if (this.revocationTimer) clearInterval(this.revocationTimer);
    this.revocationTimer = undefined;
    if (!file) return;
    // Every failure (missing, a directory, unreadable, a read error) keeps the previous
    // list with one warning per distinct problem: never an unhandled rejection.
    const unreadable = (error: unknown): void => {
      const code = (error as NodeJS.ErrnoException | undefined)?.code ?? (error instanceof Error ? error.message : String(error));
      const stamp = `unreadable/${code}`;
      if (this.revocationStamp !== stamp) logger.warn({ event: 'revocations', file, err: code }, 'revocation file not readable; keeping the previous list');
      this.revocationStamp = stamp;
    };
    const check = (): void => {
      stat(file)
        .then(async (info) => {
          if (!info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
          const stamp = `${info.mtimeMs}/${info.size}`;
          if (stamp === this.revocationStamp) return;
          const text = await readFile(file, 'utf8');
          this.revocationStamp = stamp;
          const ids = new Set<string>();
          for (const raw of text.split('\n')) {
            const line = raw.replace(/#.*/, '').trim().toLowerCase();
            if (/^[0-9a-f]{16}$/.test(line)) ids.add(line);
          }
          if (this.host.closed()) return;
          const before = core.tunnelSessionCount;
          core.setRevoked(performance.now(), ids);
          this.host.flush();
          logger.info({ event: 'revocations', file, revoked: ids.size, sessionsEnded: before - core.tunnelSessionCount }, 'revocation list loaded');
        })
        .catch(unreadable);
    };
    check();
    this.revocationTimer = setInterval(check, this.host.config().revocationPollMs);
    this.revocationTimer.unref();
  }

  /** Follows the coordinator's revocation feed (long poll) when configured (again when its URL, secret or identity changed); revocations end live sessions at once. */
  follow(): void {
    const config = this.host.config();
    const { core, logger } = this.host;
    const url = config.coordinatorUrl ?? '';
    // A new secret restarts the feed too (a rotation: the coordinator may soon refuse the old one).
    const key = url === '' ? '' : JSON.stringify([url, config.coordinatorFleetSecret ?? '', config.coordinatorIdentity?.privateKeyPem ?? '', config.core.tunnel?.revocationFeed?.maxAgeMs]);
    if (key === this.followedKey) return;
    this.follower?.close();
    this.follower = undefined;
    this.followedKey = key;
    if (url === '') return;
    const client = new CoordinatorClient({ baseUrl: url, fleetSecret: config.coordinatorFleetSecret, ...identityOption(config.coordinatorIdentity) });
    const maxAgeMs = config.core.tunnel?.revocationFeed?.maxAgeMs;
    this.follower = followRevocationFeed(
      client,
      (entries) => {
        if (this.host.closed() || entries.length === 0) return;
        const before = core.tunnelSessionCount;
        for (const entry of entries) {
          core.revoke(performance.now(), [entry.sessionId], entry.expiresAtMs);
          this.feedRevocations.onRevoked(entry.sessionId, entry.expiresAtMs);
        }
        this.host.flush();
        logger.info({ event: 'revocations', source: url, revoked: entries.length, sessionsEnded: before - core.tunnelSessionCount }, 'revocations received');
      },
      (reason) => {
        logger.warn({ event: 'revocation_feed_error', source: url, err: reason }, 'revocation feed unreachable; retrying');
        this.feedHeard?.();
      },
      {
        // From the persisted cursor, rewound as after a failure: another replica may answer now.
        sinceMs: Math.max(0, this.feedRevocations.startCursorMs - REVOCATION_FEED_OVERLAP_MS_DEFAULT),
        // An idle feed answers once per wait: well within the list's allowed age.
        waitMs: maxAgeMs === undefined ? REVOCATION_FEED_WAIT_MS_DEFAULT : Math.min(REVOCATION_FEED_WAIT_MS_DEFAULT, Math.floor(maxAgeMs / 4)),
      },
      (wallNowMs, cursorMs) => {
        if (this.host.closed()) return;
        this.feedRevocations.onAnswered(wallNowMs, cursorMs);
        this.feedHeard?.();
      },
    );
  }

  /** Stops the watcher, the feed and the checks; idempotent. */
  close(): void {
    if (this.revocationTimer) clearInterval(this.revocationTimer);
    if (this.staleCheckTimer) clearInterval(this.staleCheckTimer);
    this.follower?.close();
    this.feedRevocations.close();
  }
}
