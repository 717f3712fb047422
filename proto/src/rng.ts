/**
 * Seeded pseudo-random numbers for cores and the simulator.
 *
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 128-bit state): fast in
 * 32-bit JavaScript arithmetic, passes PractRand, and is fully determined by its seed,
 * so a simulated run can be replayed from the seed it prints.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** Cached second Box-Muller deviate (NaN when empty). */
  private spareNormal = Number.NaN;

  /** @param seed any finite number; equal seeds give identical sequences. */
  constructor(seed: number) {
    // splitmix32 spreads a small integer seed over the 128-bit state.
    let s = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    // Mix in the high part of seeds above 2^32 so that they are distinct too.
    const high = Math.trunc(seed / 4294967296) >>> 0;
    this.a = next() ^ high;
    this.b = next();
    this.c = next();
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** Uniform integer in [0, 2^32). */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform float in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n) for 1 ≤ n ≤ 2^32. */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }

  /** True with probability p (p ≤ 0 never, p ≥ 1 always). */
  chance(p: number): boolean {
    return this.nextFloat() < p;
  }

  /** Standard normal deviate (mean 0, standard deviation 1), Box-Muller. */
  nextNormal(): number {
    if (!Number.isNaN(this.spareNormal)) {
      const v = this.spareNormal;
      this.spareNormal = Number.NaN;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    const radius = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  }

  /** Fills `out` with random bytes and returns it. */
  fillBytes(out: Uint8Array): Uint8Array {
    for (let i = 0; i < out.length; i += 4) {
      const word = this.nextUint32();
      out[i] = word & 0xff;
      if (i + 1 < out.length) out[i + 1] = (word >>> 8) & 0xff;
      if (i + 2 < out.length) out[i + 2] = (word >>> 16) & 0xff;
      if (i + 3 < out.length) out[i + 3] = word >>> 24;
    }
    return out;
  }

  /**
   * An independent generator derived from this one, for giving each component its
   * own stream so that adding draws in one does not shift the others.
   */
  fork(): Rng {
    // Seed the child from 128 fresh bits: a float seed would keep only 53 of them.
    const child = new Rng(0);
    child.a = this.nextUint32() | 0;
    child.b = this.nextUint32() | 0;
    child.c = this.nextUint32() | 0;
    child.d = 1;
    for (let i = 0; i < 12; i++) child.nextUint32();
    return child;
  }
}
