/**
 * `slipstream sim proxy --config FILE`: proxies to create at start, in YAML.
 *
 * ```yaml
 * links:                      # optional: shared links, crossed by the proxies that name them
 *   - name: last-mile
 *     both: { delayMs: 10, loss: { model: bernoulli, p: 0.05 } }
 * proxies:
 *   - name: game
 *     protocol: udp
 *     listen: 127.0.0.1:27016
 *     upstream: 127.0.0.1:27015
 *     uplink: { delayMs: 30, loss: { model: bernoulli, p: 0.05 } }
 *     downlink: { delayMs: 30, trace: { file: evening.jsonl } }
 *   - { name: relay-1, protocol: udp, listen: 127.0.0.1:0, upstream: 127.0.0.2:4433, link: last-mile }
 * ```
 *
 * Keys and ranges are those of the API's proxy definition (sim/README.md); every
 * problem, including an unreadable trace file, names the file, the line and the key.
 */
import { ConfigReader } from '../../../kit/config.js';
import { checkLinkDefinition, checkProxyDefinition, configBaseDir, resolveUdpImpairment, type LinkDefinition, type ProxyDefinition, type UdpImpairment } from './definition.js';
import { PROXIES_MAX } from './constants.js';

/** A loaded config file. */
export interface ProxyConfig {
  /** The shared links, in file order (created before the proxies). */
  readonly links: LinkDefinition[];
  /** The proxies, in file order. */
  readonly proxies: ProxyDefinition[];
  /** Folder relative trace paths are read from. */
  readonly baseDir: string;
}

/** Reads and checks a config file; throws `ConfigError` (file:line: key: reason) on the first problem. */
export function loadProxyConfig(path: string): ProxyConfig {
  // Annotated so that TypeScript treats reader.fail() (returns never) as the end of a branch.
  const reader: ConfigReader = ConfigReader.fromFile(path);
  reader.rejectUnknownKeys([], ['links', 'proxies']);
  const baseDir = configBaseDir(path);
  const links: LinkDefinition[] = [];
  const linkCount = reader.sequenceLength(['links'], { optional: true, maxItems: PROXIES_MAX });
  for (let i = 0; i < linkCount; i++) {
    const at = ['links', i];
    const checked = checkLinkDefinition(reader.get(at), at);
    if (!checked.ok) reader.fail(checked.error.path, checked.error.reason);
    if (links.some((l) => l.name === checked.value.name)) reader.fail([...at, 'name'], `'${checked.value.name}' is used by an earlier link; names must be unique`);
    for (const direction of ['uplink', 'downlink'] as const) {
      const key = reader.has([...at, 'both']) ? 'both' : direction;
      const resolved = resolveUdpImpairment(checked.value[direction], [...at, key], baseDir);
      if (!resolved.ok) reader.fail(resolved.error.path, resolved.error.reason);
    }
    links.push(checked.value);
  }
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
    if (definition.link !== undefined && !links.some((l) => l.name === definition.link)) {
      reader.fail([...at, 'link'], `no shared link named '${definition.link}' under links:${links.length > 0 ? ` (links: ${links.map((l) => l.name).join(', ')})` : ''}`);
    }
    if (definition.protocol === 'udp' && definition.link === undefined) {
      for (const direction of ['uplink', 'downlink'] as const) {
        // A `both` key was copied into both directions; point errors at it.
        const key = reader.has([...at, 'both']) ? 'both' : direction;
        const resolved = resolveUdpImpairment(definition[direction] as UdpImpairment, [...at, key], baseDir);
        if (!resolved.ok) reader.fail(resolved.error.path, resolved.error.reason);
      }
    }
    proxies.push(definition);
  }
  return { links, proxies, baseDir };
}
