/**
 * Every `slipstream` command, loaded lazily so that `slipstream --help` stays fast
 * and a command's dependencies load only when it runs.
 *
 * To add a command: export a `Command` from the part's own folder and add a line here.
 */
import { commandGroup, type Command } from '../kit/command.js';

/** Top-level commands by name, in the order `--help` lists them. */
export const commands: Readonly<Record<string, () => Promise<Command>>> = {
  sim: async () =>
    commandGroup('sim', 'Network simulator: link models, the impairment proxy, scenario runs (what players feel) and swarm testing.', {
      link: async () => (await import('../sim/src/cli/link-command.js')).linkCommand,
      proxy: async () => (await import('../sim/src/proxy/command.js')).proxyCommand,
      run: async () => (await import('../sim/src/cli/run-command.js')).runCommand,
      swarm: async () => (await import('../sim/src/cli/swarm-command.js')).swarmCommand,
    }),
  bench: async () =>
    commandGroup('bench', 'Benchmarks that print figures measured side by side with a baseline.', {
      fec: async () => (await import('../bench/fec.js')).fecBenchCommand,
      relay: async () => (await import('../bench/relay.js')).relayBenchCommand,
      coordinator: async () => (await import('../bench/coordinator.js')).coordinatorBenchCommand,
      proxy: async () => (await import('../bench/proxy.js')).proxyBenchCommand,
      qoe: async () => (await import('../bench/qoe.js')).qoeBenchCommand,
      flood: async () => (await import('../bench/flood.js')).floodBenchCommand,
    }),
  coordinator: async () => (await import('../coordinator/src/command.js')).coordinatorCommand,
  relay: async () => (await import('../relay/src/command.js')).relayCommand,
  connect: async () => (await import('../sdk/src/command.js')).connectCommand,
  demo: async () => (await import('./demo.js')).demoCommand,
  dev: async () => (await import('./dev.js')).devCommand,
};
