/**
 * Token buckets for packet and byte rates, sans-IO (time comes in as `now`, ms).
 * One object holds both limits so a hot path checks a flow with one call and no
 * allocation. A rate of 0 means unlimited.
 */
export class RateBucket {
  private packetTokens: number;
  private byteTokens: number;
  private lastMs: number;
  private packetCapacity = 0;
  private byteCapacity = 0;

  /**
   * @param packetsPerSecond packet rate; 0 = unlimited
   * @param bytesPerSecond byte rate; 0 = unlimited
   * @param burstMs bucket depth as ms at full rate (default 500 ms)
   * @param nowMs creation time; the bucket starts full
   */
  constructor(
    private packetsPerSecond: number,
    private bytesPerSecond: number,
    private burstMs: number,
    nowMs: number,
  ) {
    this.setCapacities();
    this.packetTokens = this.packetCapacity;
    this.byteTokens = this.byteCapacity;
    this.lastMs = nowMs;
  }

  private setCapacities(): void {
    // At least one packet of each kind must fit, or a low rate would block everything.
    this.packetCapacity = Math.max(1, (this.packetsPerSecond * this.burstMs) / 1000);
    this.byteCapacity = Math.max(65_536, (this.bytesPerSecond * this.burstMs) / 1000);
  }

  /** Changes the rates (SIGHUP reload); tokens held are kept, clipped to the new depth. */
  setRates(packetsPerSecond: number, bytesPerSecond: number, burstMs: number): void {
    this.packetsPerSecond = packetsPerSecond;
    this.bytesPerSecond = bytesPerSecond;
    this.burstMs = burstMs;
    this.setCapacities();
    if (this.packetTokens > this.packetCapacity) this.packetTokens = this.packetCapacity;
    if (this.byteTokens > this.byteCapacity) this.byteTokens = this.byteCapacity;
  }

  private refill(nowMs: number): void {
    const elapsedMs = nowMs - this.lastMs;
    if (elapsedMs <= 0) return;
    this.lastMs = nowMs;
    this.packetTokens = Math.min(this.packetCapacity, this.packetTokens + (this.packetsPerSecond * elapsedMs) / 1000);
    this.byteTokens = Math.min(this.byteCapacity, this.byteTokens + (this.bytesPerSecond * elapsedMs) / 1000);
  }

  /** Takes one packet of `bytes`; false (and nothing taken) when either limit is exhausted. */
  take(nowMs: number, bytes: number): boolean {
    this.refill(nowMs);
    const packetsOk = this.packetsPerSecond === 0 || this.packetTokens >= 1;
    const bytesOk = this.bytesPerSecond === 0 || this.byteTokens >= bytes;
    if (!packetsOk || !bytesOk) return false;
    this.packetTokens -= 1;
    this.byteTokens -= bytes;
    return true;
  }

  /** Whether a packet of no bytes could be taken now (nothing is taken): a check that must not spend. */
  canTake(nowMs: number): boolean {
    this.refill(nowMs);
    return this.packetsPerSecond === 0 || this.packetTokens >= 1;
  }

  /**
   * Stream accounting (TCP): takes `bytes` whatever the bucket holds — the bytes were
   * already read — letting the byte tokens go into debt, and returns how long the
   * reader should pause so that the debt is paid back at the byte rate, ms (0 when no
   * debt, or when the byte rate is unlimited). Packet tokens are not touched.
   */
  spend(nowMs: number, bytes: number): number {
    if (this.bytesPerSecond === 0) return 0;
    this.refill(nowMs);
    this.byteTokens -= bytes;
    return this.byteTokens >= 0 ? 0 : (-this.byteTokens * 1000) / this.bytesPerSecond;
  }

  /** Whether the bucket is full (nothing spent recently): per-source state can then be forgotten. */
  isFull(nowMs: number): boolean {
    this.refill(nowMs);
    return (this.packetsPerSecond === 0 || this.packetTokens >= this.packetCapacity) && (this.bytesPerSecond === 0 || this.byteTokens >= this.byteCapacity);
  }
}

/**
 * Rate limits for senders that have proved nothing (probes, session opens, path
 * changes, answers to unknown sessions) without any per-address state: a fixed array
 * of packet buckets indexed by a keyed hash of the address. Spoofed addresses then
 * cost no memory, and the key (secret, drawn at construction) stops an attacker from
 * aiming many addresses at the bucket a real player hashes to.
 */
export class StatelessLimiter {
  private readonly tokens: Float64Array;
  private readonly lastMs: Float64Array;
  private readonly mask: number;
  private readonly key0: number;
  private readonly key1: number;
  private capacity = 1;

  /**
   * @param bucketCount buckets (a power of two)
   * @param packetsPerSecond rate per bucket; 0 = unlimited
   * @param key 8 unpredictable bytes (the hash key)
   * @param nowMs creation time; buckets start full
   */
  constructor(
    bucketCount: number,
    private packetsPerSecond: number,
    key: Uint8Array,
    nowMs: number,
  ) {
    if (bucketCount <= 0 || (bucketCount & (bucketCount - 1)) !== 0) throw new RangeError(`StatelessLimiter: bucketCount ${bucketCount} is not a power of two`);
    this.tokens = new Float64Array(bucketCount);
    this.lastMs = new Float64Array(bucketCount).fill(nowMs);
    this.mask = bucketCount - 1;
    this.key0 = ((key[0]! << 24) | (key[1]! << 16) | (key[2]! << 8) | key[3]!) >>> 0;
    this.key1 = ((key[4]! << 24) | (key[5]! << 16) | (key[6]! << 8) | key[7]!) >>> 0;
    this.setRate(packetsPerSecond);
    this.tokens.fill(this.capacity);
  }

  /** Changes the rate per bucket (a reload); tokens are clipped to the new depth (one second at full rate). */
  setRate(packetsPerSecond: number): void {
    this.packetsPerSecond = packetsPerSecond;
    this.capacity = Math.max(1, packetsPerSecond);
    for (let i = 0; i < this.tokens.length; i++) if (this.tokens[i]! > this.capacity) this.tokens[i] = this.capacity;
  }

  /** Takes one packet from `address`'s bucket; false (nothing taken) when it is empty. */
  take(nowMs: number, address: string): boolean {
    if (this.packetsPerSecond === 0) return true;
    const i = this.indexOf(address);
    const elapsedMs = nowMs - this.lastMs[i]!;
    let tokens = this.tokens[i]!;
    if (elapsedMs > 0) {
      tokens = Math.min(this.capacity, tokens + (this.packetsPerSecond * elapsedMs) / 1000);
      this.lastMs[i] = nowMs;
    }
    if (tokens < 1) {
      this.tokens[i] = tokens;
      return false;
    }
    this.tokens[i] = tokens - 1;
    return true;
  }

  /** The bucket of `address`: a keyed FNV-1a/murmur-finalizer hash (not cryptographic, but secret-keyed). */
  indexOf(address: string): number {
    let h = this.key0 ^ 0x811c9dc5;
    for (let i = 0; i < address.length; i++) h = Math.imul(h ^ address.charCodeAt(i), 0x01000193);
    h ^= this.key1;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    return (h >>> 0) & this.mask;
  }
}
