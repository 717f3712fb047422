/**
 * "Did you mean …?" for unknown config keys, flags and commands: the accepted name
 * nearest to what was typed, when it is near enough to be a typo.
 */

/**
 * Edit distance counting an insertion, a deletion, a substitution or a swap of two
 * neighbouring characters as one edit (optimal string alignment), case-insensitive:
 * `idleTimoutMs` is 1 from `idleTimeoutMs`, `lsiten` 1 from `listen`.
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const rows = s.length + 1;
  const cols = t.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let best = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1]!;
}

/**
 * The entry of `accepted` nearest to `typed`, or undefined when none is close enough
 * to be a typo: at most 1 edit for names up to 4 characters, 2 up to 8, 3 beyond (so
 * `port` does not suggest `host`, but `coordinatorUlr` suggests `coordinatorUrl`). Ties
 * go to the first in `accepted`.
 */
export function closestMatch(typed: string, accepted: readonly string[]): string | undefined {
  const limit = typed.length <= 4 ? 1 : typed.length <= 8 ? 2 : 3;
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of accepted) {
    const distance = editDistance(typed, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}
