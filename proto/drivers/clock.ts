/** Real-time implementations of the injected interfaces, for production drivers. */
import { performance } from 'node:perf_hooks';
import type { Clock } from '../src/clock.js';

/** The process's monotonic clock (`performance.now()`, ms since process start). */
export const monotonicClock: Clock = { now: () => performance.now() };
