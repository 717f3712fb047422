/**
 * Address helpers for the relay core: CIDR lists (allow/deny, origin restrictions) and
 * the rendezvous hash that maps a client address onto an origin group. Sans-IO: IP
 * literals are parsed by the proxy-protocol module's own parser, not `node:net`.
 */
import { writeIpAs16 } from '../../../proto/src/proxy-protocol.js';

/** One parsed CIDR block, held as a 16-byte IPv6 prefix (IPv4 blocks as IPv4-mapped /96+n). */
export interface Cidr {
  /** The text it was parsed from, for logs and errors. */
  readonly text: string;
  readonly prefix: Uint8Array;
  readonly bits: number;
}

/** Parses `a.b.c.d/n`, `x::y/n` or a bare address (a /32 or /128). Returns undefined when invalid. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const prefix = new Uint8Array(16);
  if (!writeIpAs16(address, prefix, 0)) return undefined;
  const v4 = !address.includes(':');
  const maxBits = v4 ? 32 : 128;
  let bits = maxBits;
  if (slash !== -1) {
    const raw = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(raw)) return undefined;
    bits = Number(raw);
    if (bits > maxBits) return undefined;
  }
  return { text, prefix, bits: v4 ? bits + 96 : bits };
}

const scratch = new Uint8Array(16);

/** Whether `address` falls in any block of `list`. Unparseable addresses match nothing. */
export function cidrListMatches(list: readonly Cidr[], address: string): boolean {
  if (list.length === 0) return false;
  if (!writeIpAs16(address, scratch, 0)) return false;
  for (const cidr of list) {
    let ok = true;
    const whole = cidr.bits >>> 3;
    for (let i = 0; i < whole && ok; i++) if (scratch[i] !== cidr.prefix[i]) ok = false;
    const rest = cidr.bits & 7;
    if (ok && rest !== 0) {
      const mask = (0xff << (8 - rest)) & 0xff;
      if ((scratch[whole]! & mask) !== (cidr.prefix[whole]! & mask)) ok = false;
    }
    if (ok) return true;
  }
  return false;
}

/** Whether `address` is loopback, RFC 1918/6598 private, link-local or IPv6 ULA: never reachable through a ticket unless configured. */
export function isPrivateAddress(address: string): boolean {
  return cidrListMatches(PRIVATE_RANGES, address);
}

const PRIVATE_RANGES: readonly Cidr[] = ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '0.0.0.0/8', '::1/128', '::/128', 'fc00::/7', 'fe80::/10'].map((text) => parseCidr(text)!);

/** FNV-1a over a string's UTF-16 code units, 32-bit. Stable across processes (unlike a seeded hash), so every relay maps a client the same way. */
export function hashString(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Mixes a client hash with an origin's hash (murmur3 finalizer): the rendezvous score. */
export function rendezvousScore(clientHash: number, originHash: number): number {
  let h = (clientHash ^ originHash) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Splits `host:port` or `[v6]:port`; undefined when malformed. */
export function splitHostPort(text: string): { host: string; port: number; portEnd: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  const portEnd = m[4] === undefined ? port : Number(m[4]);
  if (port > 65535 || portEnd > 65535 || portEnd < port) return undefined;
  return { host, port, portEnd };
}
