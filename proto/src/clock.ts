/**
 * Time as the sans-IO cores see it: a monotonic millisecond count supplied by the
 * driver. Production drivers read the process's monotonic clock; the simulator reads its
 * virtual clock. Cores never read a clock themselves: they take `now` as an argument.
 */
export interface Clock {
  /** Monotonic time in milliseconds (fractional allowed). Never goes backwards. */
  now(): number;
}
