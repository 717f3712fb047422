/**
 * `slipstream sim proxy --config FILE`: proxies to create at start, in YAML.
 *
 * ```yaml
 * proxies:
 *   - name: game
 *     protocol: udp
 *     listen: 127.0.0.1:27016
 *     upstream: 127.0.0.1:27015
 *     uplink: { delayMs: 30, loss: { model: bernoulli, p: 0.05 } }
 *     downlink: { delayMs: 30, trace: { file: evening.jsonl } }
 * ```
 *
 * Keys and ranges are those of the API's proxy definition (sim/README.md); every
 * problem, including an unreadable trace file, names the file, the line and the key.
 */
import { ConfigReader } from '../../../kit/config.js';
import { checkProxyDefinition, configBaseDir, resolveUdpImpairment, type ProxyDefinition, type UdpImpairment } from './definition.js';
import { PROXIES_MAX } from './constants.js';

/** A loaded config file. */
export interface ProxyConfig {
  /** The proxies, in file order. */
  readonly proxies: ProxyDefinition[];
  /** Folder relative trace paths are read from. */
  readonly baseDir: string;
}

/** Reads and checks a config file; throws `ConfigError` (file:line: key: reason) on the first problem. */
export function loadProxyConfig(path: string): ProxyConfig {
  // Annotated so that TypeScript treats reader.fail() (returns never) as the end of a branch.
  const reader: ConfigReader = ConfigReader.fromFile(path);
  reader.rejectUnknownKeys([], ['proxies']);
  const baseDir = configBaseDir(path);
  const count = reader.sequenceLength(['proxies'], { maxItems: PROXIES_MAX });
  const proxies: ProxyDefinition[] = [];
  const names = new Set<string>();
  for (let i = 0; i < count; i++) {
    const at = ['proxies', i];
    const checked = checkProxyDefinition(reader.get(at), at);
    if (!checked.ok) reader.fail(checked.error.path, checked.error.reason);
    const definition = checked.value;
    if (names.has(definition.name)) reader.fail([...at, 'name'], `'${definition.name}' is used by an earlier proxy; names must be unique`);
    names.add(definition.name);
    if (definition.protocol === 'udp') {
      for (const direction of ['uplink', 'downlink'] as const) {
        // A `both` key was copied into both directions; point errors at it.
        const key = reader.has([...at, 'both']) ? 'both' : direction;
        const resolved = resolveUdpImpairment(definition[direction] as UdpImpairment, [...at, key], baseDir);
        if (!resolved.ok) reader.fail(resolved.error.path, resolved.error.reason);
      }
    }
    proxies.push(definition);
  }
  return { proxies, baseDir };
}
