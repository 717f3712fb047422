/**
 * The changing path recorded by the proxy's trace record/replay run, which its test
 * (sim/test/proxy-udp.test.ts) and `slipstream bench proxy` both make: one step a
 * second, set through the proxy's API. The test's tolerances rest on these figures
 * (RTTs ≥ 60 ms, loss 8–15 % each way): its comment says why.
 */

/** One step a second: delay and jitter (σ, normal) each way, ms, and loss each way (Bernoulli). */
export const TRACE_SCHEDULE = [
  { delayMs: 30, jitterMs: 1, p: 0.08 },
  { delayMs: 45, jitterMs: 3, p: 0.12 },
  { delayMs: 60, jitterMs: 4, p: 0.15 },
  { delayMs: 35, jitterMs: 2, p: 0.1 },
  { delayMs: 50, jitterMs: 1, p: 0.09 },
] as const;

/** One step of {@link TRACE_SCHEDULE}. */
export type TraceScheduleStep = (typeof TRACE_SCHEDULE)[number];

/** A step as the proxy's API takes it for one direction (`both`, `uplink` or `downlink`). */
export function impairmentsOf(step: TraceScheduleStep): Record<string, unknown> {
  return { delayMs: step.delayMs, jitterMs: step.jitterMs, jitterDist: 'normal', loss: { model: 'bernoulli', p: step.p } };
}
