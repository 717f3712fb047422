/**
 * The cases of `slipstream bench qoe`: the impairment each puts on the player's last
 * mile (both directions, on every proxied path of the player and on the direct
 * baseline's), as `sim proxy` link models. Every case has 10 ms one way.
 */

/** The last mile's one-way delay in every case, ms. */
export const LAST_MILE_DELAY_MS = 10;

/** One case: its name, what it models, its impairment, and whether the player's relay is SIGKILLed halfway. */
export interface QoeCase {
  readonly name: string;
  readonly description: string;
  readonly impairment: Readonly<Record<string, unknown>>;
  readonly killRelayMidway: boolean;
}

/** Gilbert-Elliott loss with mean rate `rate` and mean burst `burst` packets (lossBad 1, lossGood 0: rate p/(p+r), burst 1/r). */
function bursty(rate: number, burst: number): Record<string, unknown> {
  const r = 1 / burst;
  return { model: 'gilbert-elliott', p: (rate * r) / (1 - rate), r, lossBad: 1, lossGood: 0 };
}

const base = { delayMs: LAST_MILE_DELAY_MS };

/** Every case, in the order they run (the relay kill last: it leaves the fleet one relay short). */
export const QOE_CASES: readonly QoeCase[] = [
  { name: 'clean', description: '10 ms one way, no loss', impairment: base, killRelayMidway: false },
  { name: 'loss-1', description: '1 % random loss each way', impairment: { ...base, loss: { model: 'bernoulli', p: 0.01 } }, killRelayMidway: false },
  { name: 'loss-5', description: '5 % random loss each way', impairment: { ...base, loss: { model: 'bernoulli', p: 0.05 } }, killRelayMidway: false },
  { name: 'loss-10', description: '10 % random loss each way', impairment: { ...base, loss: { model: 'bernoulli', p: 0.1 } }, killRelayMidway: false },
  { name: 'burst-5-b2', description: '5 % Gilbert-Elliott loss each way, mean burst 2', impairment: { ...base, loss: bursty(0.05, 2) }, killRelayMidway: false },
  { name: 'burst-5-b4', description: '5 % Gilbert-Elliott loss each way, mean burst 4', impairment: { ...base, loss: bursty(0.05, 4) }, killRelayMidway: false },
  // Pareto jitter of scale 27 ms: median ≈ 7 ms, p99 ≈ 98 ms extra; keepOrder turns a spike into a queue behind it, as on a real link.
  { name: 'jitter-spikes', description: 'jitter spikes to ~100 ms (pareto, scale 27 ms, order kept) each way', impairment: { ...base, jitterMs: 27, jitterDist: 'pareto', keepOrder: true }, killRelayMidway: false },
  { name: 'relay-kill', description: 'clean last mile; the relay carrying the player is SIGKILLed halfway', impairment: base, killRelayMidway: true },
];
