/**
 * V8 garbage-collector settings for the relay process, applied at start, because two
 * of V8's defaults add milliseconds to the packets in flight on a busy relay (measured
 * with `--trace-gc` during `slipstream bench relay`, 2 cores, load generator beside):
 *
 * - Parallel scavenging: a young-generation collection splits its work across helper
 *   threads and waits for them; when every core is busy moving packets the OS runs those
 *   helpers late. Scavenges measured 0.65 ms median (1.3 ms p90) with it and 0.21 ms
 *   median without, for the same young generation; the minimal forwarder's were 0.14 ms.
 * - Young-generation growth: V8 doubles a semi-space (up to 16 MiB) when much of what
 *   it collects survives, as bulk TCP data in flight does. It then starts a full
 *   mark-compact whenever the old generation's room under its limit is no larger than
 *   the semi-space; the relay's old generation is ~10 MiB with 16 MiB of room, so at
 *   16 MiB a mark-compact that frees nothing follows every scavenge (one per 0.6–0.9 s,
 *   3–8 ms each: tunnel 1200 B p99 18 ms against the minimal forwarder's 2.4 ms).
 *
 * `--max-semi-space-size` works only when given at process start, but V8 reads
 * `--semi-space-growth-factor` and `--parallel-scavenge` at each collection, so both are
 * set here: the young generation keeps the size it reached while the relay started
 * (1–4 MiB). A setting the operator gave on the command line or in NODE_OPTIONS wins.
 */
import v8 from 'node:v8';

const MIB = 1 << 20;

/**
 * One semi-space's capacity now, bytes: what it holds plus what it has room for,
 * rounded up to whole MiB (pages lose a little to headers; capacities are 1, 2, 4 …
 * MiB). Not `space_size`: that is the memory committed so far, which lags.
 */
export function semiSpaceBytes(): number {
  const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return space === undefined ? 0 : Math.ceil((space.space_used_size + space.space_available_size) / MIB) * MIB;
}

/** What {@link tuneGarbageCollector} set, for the `started` log line. */
export interface GcTuning {
  /** V8 flags set at runtime, e.g. `--no-parallel-scavenge`. */
  readonly set: readonly string[];
  /** Flags left alone because the operator gave a setting of their own. */
  readonly leftToOperator: readonly string[];
  /** The semi-space capacity when the settings were applied, bytes (see {@link semiSpaceBytes}). */
  readonly youngGenerationBytes: number;
}

/** The V8 flags this process was started with (argv and NODE_OPTIONS), normalised to dashes. */
function operatorFlags(): string[] {
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].filter((a) => a.startsWith('--')).map((a) => a.split('=')[0]!.replace(/_/g, '-'));
}

/** Applies the settings described in the module comment; call once, early in `slipstream relay`. */
export function tuneGarbageCollector(): GcTuning {
  const given = new Set(operatorFlags());
  const set: string[] = [];
  const leftToOperator: string[] = [];
  const apply = (flag: string, ownedBy: string[]): void => {
    if (ownedBy.some((f) => given.has(f))) {
      leftToOperator.push(flag);
      return;
    }
    v8.setFlagsFromString(flag);
    set.push(flag);
  };
  apply('--no-parallel-scavenge', ['--parallel-scavenge', '--no-parallel-scavenge', '--single-threaded-gc', '--single-threaded']);
  apply('--semi-space-growth-factor=1', ['--semi-space-growth-factor', '--max-semi-space-size', '--min-semi-space-size']);
  return { set, leftToOperator, youngGenerationBytes: semiSpaceBytes() };
}
