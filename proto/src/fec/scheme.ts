/**
 * The protection a FEC sender applies, and the defaults behind it.
 *
 * Wire mapping (the data-plane header carries group id u32, shard index u8, k u8, r u8):
 * - `off`: every packet is its own group (k = 1, r = 0, index 0).
 * - `duplicate`: as `off`, and the same shard is sent `copies` more times, `spacingMs`
 *   apart; the receiver drops the copies it does not need.
 * - `rs`: data packet j of a group carries index j and the scheme's nominal (k, r); when
 *   the group closes (full, or its hold time expired) its parity shards carry index
 *   k' + i and the group's actual (k', r'), k' ≤ k data packets. A shard is data when
 *   index < its k field, parity otherwise.
 * - `sw` (sliding window): r = 255 marks the shard ({@link FEC_SLIDING_WINDOW_MARKER};
 *   no Reed-Solomon shard has it, since k + r ≤ 255 there). A source packet is type Data
 *   with group = its source seq, index 0, k = 1; a repair is type Parity with group = the
 *   first source seq of its window, k = the window's count (1–255), index 255, and its
 *   coefficient seed is the header's wire sequence (the encoder numbers seeds per shard,
 *   so they match). An older peer's header check (k + r ≤ 255) rejects both as bad FEC
 *   fields rather than misreading them; it never sees them anyway, since `sw` is only
 *   sent on a session both ends negotiated it for.
 */
import { FEC_SLIDING_WINDOW_MARKER } from '../header.js';
import { FEC_MAX_SHARDS } from './rs.js';
import { validateSlidingWindowParameters, type SlidingWindowParameters } from './sliding-window-encoder.js';

export { FEC_SLIDING_WINDOW_MARKER };

/** No redundancy. */
export interface FecSchemeOff {
  readonly mode: 'off';
}

/** Send every packet `copies` extra times, `spacingMs` apart (copy i at +i·spacingMs). */
export interface FecSchemeDuplicate {
  readonly mode: 'duplicate';
  /** Extra copies per packet, 1 to {@link FEC_COPIES_MAX}. */
  readonly copies: number;
  /** Delay between copies in ms, 0 to {@link FEC_SPACING_MS_MAX}; spacing dodges loss bursts. */
  readonly spacingMs: number;
}

/** Systematic Reed-Solomon (k, r) over `interleave` groups filled round-robin. */
export interface FecSchemeRs {
  readonly mode: 'rs';
  /** Data packets per group, 1 to 254. */
  readonly k: number;
  /** Parity packets per full group, 1 to 255 − k. A group closed early gets ⌈r·k'/k⌉. */
  readonly r: number;
  /**
   * Groups filled round-robin (a block interleaver), 1 to {@link FEC_INTERLEAVE_MAX}:
   * consecutive packets land in different groups, so a burst of up to `interleave`
   * losses costs each group one shard. Their parity is sent interleaved the same way.
   */
  readonly interleave: number;
  /**
   * Longest time in ms a stripe of groups stays open after its first packet before
   * its parity is sent anyway, 0 to {@link FEC_HOLD_MS_MAX}. Data never waits; this
   * bounds how late a rebuilt packet can be. Default {@link FEC_HOLD_MS_DEFAULT}.
   */
  readonly holdMs: number;
}

/**
 * Sliding-window random linear code (`sliding-window-*.ts`): sources go out unchanged,
 * each followed by `repairsPerSource` repairs over the newest sources. The controller's
 * `sw` family tunes its fields; a sender cannot switch into or out of it at run time
 * (its numbering differs from groups). The fields are {@link SlidingWindowParameters}
 * (units and ranges there).
 */
export interface FecSchemeSlidingWindow extends SlidingWindowParameters {
  readonly mode: 'sw';
}

/** One of the protection schemes. */
export type FecScheme = FecSchemeOff | FecSchemeDuplicate | FecSchemeRs | FecSchemeSlidingWindow;

/** Most extra copies in duplicate mode. */
export const FEC_COPIES_MAX = 4;
/** Longest duplicate spacing, in ms. */
export const FEC_SPACING_MS_MAX = 1000;
/** Most groups in one interleaved stripe. */
export const FEC_INTERLEAVE_MAX = 16;
/** Longest group hold time, in ms. */
export const FEC_HOLD_MS_MAX = 1000;
/** Group hold time when none is given, in ms (UDPspeeder holds ≤ 8 ms). */
export const FEC_HOLD_MS_DEFAULT = 8;
// The default payload limit is the codec's (rs.ts), so the sliding-window coders need not import this file.
export { FEC_MAX_PAYLOAD_BYTES_DEFAULT } from './rs.js';

/** The `off` scheme (a shared constant). */
export const FEC_OFF: FecSchemeOff = { mode: 'off' };

/**
 * Throws a RangeError naming the field and its range when `scheme` is invalid
 * (programmer or configuration error: schemes come from the controller or config).
 */
export function validateScheme(scheme: FecScheme): void {
  const check = (field: string, value: number, min: number, max: number, integer: boolean): void => {
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
      throw new RangeError(`FEC scheme ${scheme.mode}.${field}: ${value} is out of range; expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
  };
  switch (scheme.mode) {
    case 'off':
      return;
    case 'duplicate':
      check('copies', scheme.copies, 1, FEC_COPIES_MAX, true);
      check('spacingMs', scheme.spacingMs, 0, FEC_SPACING_MS_MAX, false);
      return;
    case 'rs':
      check('k', scheme.k, 1, FEC_MAX_SHARDS - 1, true);
      check('r', scheme.r, 1, FEC_MAX_SHARDS - scheme.k, true);
      check('interleave', scheme.interleave, 1, FEC_INTERLEAVE_MAX, true);
      check('holdMs', scheme.holdMs, 0, FEC_HOLD_MS_MAX, false);
      return;
    case 'sw':
      validateSlidingWindowParameters(scheme);
      return;
    default:
      throw new RangeError(`FEC scheme mode '${(scheme as { mode: string }).mode}' is not one of off, duplicate, rs, sw`);
  }
}

/** Nominal extra bandwidth of a scheme as a fraction of the data bytes (0.5 = 50 %). */
export function schemeOverhead(scheme: FecScheme): number {
  if (scheme.mode === 'off') return 0;
  if (scheme.mode === 'duplicate') return scheme.copies;
  if (scheme.mode === 'sw') return scheme.repairsPerSource;
  return scheme.r / scheme.k;
}

/** Whether two schemes are the same (field by field). */
export function sameScheme(a: FecScheme, b: FecScheme): boolean {
  if (a.mode !== b.mode) return false;
  if (a.mode === 'duplicate' && b.mode === 'duplicate') return a.copies === b.copies && a.spacingMs === b.spacingMs;
  if (a.mode === 'rs' && b.mode === 'rs') return a.k === b.k && a.r === b.r && a.interleave === b.interleave && a.holdMs === b.holdMs;
  if (a.mode === 'sw' && b.mode === 'sw') {
    return a.repairsPerSource === b.repairsPerSource && a.repairSpacingMs === b.repairSpacingMs && a.windowPackets === b.windowPackets && a.windowMs === b.windowMs;
  }
  return true;
}

/** Short human form: `off`, `dup×1/12ms`, `rs(4,2)×4/20ms`, `sw(1×8)/2ms/20ms`. */
export function formatScheme(scheme: FecScheme): string {
  if (scheme.mode === 'off') return 'off';
  if (scheme.mode === 'duplicate') return `dup×${scheme.copies}/${scheme.spacingMs}ms`;
  if (scheme.mode === 'sw') return `sw(${Number(scheme.repairsPerSource.toFixed(2))}×${scheme.windowPackets})/${scheme.repairSpacingMs}ms/${scheme.windowMs}ms`;
  return `rs(${scheme.k},${scheme.r})${scheme.interleave > 1 ? `×${scheme.interleave}` : ''}/${scheme.holdMs}ms`;
}
