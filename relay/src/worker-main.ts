/**
 * A relay worker thread (workers.ts): runs the relay of the config file on the primary's
 * ports, with the hand-off hooks, and answers the primary's requests (reload, drain,
 * metrics, health). Its log lines carry `worker: N`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger, type LogFormat, type LogLevel } from '../../kit/log.js';
import { loadRelayConfig } from './config.js';
import { Relay } from './relay.js';
import { registerWorkerMetrics, workerConfig, workerHooks, WorkerCounters, type FromWorker, type ToWorker, type WorkerData, type WorkerLoad } from './workers.js';

const data = workerData as WorkerData;
const port = parentPort!;
const post = (message: FromWorker): void => port.postMessage(message);
const logger = createLogger('relay', data.logLevel as LogLevel, data.logFormat as LogFormat | undefined).child({ worker: data.index });
const counters = new WorkerCounters();
let relay: Relay | undefined;
const peers = new Map(Object.entries(data.peers).map(([i, p]) => [Number(i), p]));
const hooks = workerHooks(data.index, data.count, peers, () => relay, counters);

try {
  relay = await Relay.start({ config: workerConfig(loadRelayConfig(data.configPath), data.ports), logger, worker: hooks });
  registerWorkerMetrics(relay.metrics, data.index, () => relay, counters);
  post({ type: 'started' });
} catch (error) {
  post({ type: 'failed', error: (error as Error).message });
}

port.on('message', (message: ToWorker) => {
  const r = relay;
  if (r === undefined) return;
  switch (message.type) {
    case 'reload':
      try {
        r.reload(workerConfig(loadRelayConfig(data.configPath), data.ports));
      } catch (error) {
        logger.error({ event: 'reload_failed', err: (error as Error).message }, 'reload failed; keeping the running configuration');
      }
      return;
    case 'drain':
      void r.drain(message.deadlineMs).then((left) => {
        post({ type: 'drained', left });
        port.close();
      });
      return;
    case 'close':
      r.close();
      port.close();
      return;
    case 'metrics':
      void r.metrics.getMetricsAsJSON().then((value) => post({ type: 'answer', id: message.id, value }));
      return;
    case 'health':
      post({ type: 'answer', id: message.id, value: r.health() });
      return;
    case 'load': {
      let packets = 0;
      for (const s of r.core.ruleStats.values()) packets += s.packetsUp + s.packetsDown;
      post({ type: 'answer', id: message.id, value: { sessions: r.core.fleetLoadSessionCount, packets, status: r.core.fleetStatusTally() } satisfies WorkerLoad });
      return;
    }
    case 'peers':
      r.core.setPeers(message.addresses);
      return;
  }
});
