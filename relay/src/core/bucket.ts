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

  /** Whether the bucket is full (nothing spent recently): per-source state can then be forgotten. */
  isFull(nowMs: number): boolean {
    this.refill(nowMs);
    return (this.packetsPerSecond === 0 || this.packetTokens >= this.packetCapacity) && (this.bytesPerSecond === 0 || this.byteTokens >= this.byteCapacity);
  }
}
