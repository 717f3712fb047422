/**
 * Geography and address helpers for ranking: great-circle distance, the RTT it
 * suggests, the coarse client prefix (/24 for IPv4, /48 for IPv6) that is the only
 * client identity the coordinator stores or shares, and the reporter key (address,
 * IPv6 /64) that client reports are counted by in memory. Pure functions; no sockets.
 */
import { GEO_BASE_RTT_MS, GEO_FIBRE_KM_PER_MS, GEO_PATH_STRETCH } from './constants.js';

/** Mean Earth radius, km. */
const EARTH_RADIUS_KM = 6371;

/** Great-circle distance between two points given in degrees, km (haversine). */
export function greatCircleKm(latitudeA: number, longitudeA: number, latitudeB: number, longitudeB: number): number {
  const rad = Math.PI / 180;
  const dLat = (latitudeB - latitudeA) * rad;
  const dLon = (longitudeB - longitudeA) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(latitudeA * rad) * Math.cos(latitudeB * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

/**
 * {@link greatCircleKm} for points given in radians with cos(latitude) precomputed
 * (the ranking loop keeps them per relay), km.
 */
export function greatCircleKmRad(latARad: number, lonARad: number, cosLatA: number, latBRad: number, lonBRad: number, cosLatB: number): number {
  const h = Math.sin((latBRad - latARad) / 2) ** 2 + cosLatA * cosLatB * Math.sin((lonBRad - lonARad) / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** RTT a path of `distanceKm` great-circle km suggests: there and back in fibre, stretched, plus a base, ms. */
export function geoRttMs(distanceKm: number): number {
  return GEO_BASE_RTT_MS + (2 * distanceKm * GEO_PATH_STRETCH) / GEO_FIBRE_KM_PER_MS;
}

/**
 * A lower bound of {@link geoRttMs} between two points whose unit vectors (x, y, z on
 * the unit sphere) are `chord` apart, |u₁ − u₂|: the great-circle distance is
 * 2R·asin(chord / 2) ≥ R·chord, and the RTT grows with distance. Costs no
 * trigonometry, so the ranking can rule out far relays before computing their
 * distance exactly. Ms (not padded for rounding: the caller leaves a margin).
 */
export function geoRttFloorMs(chord: number): number {
  return geoRttMs(EARTH_RADIUS_KM * chord);
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function ipv4Prefix(address: string): string | undefined {
  const m = IPV4.exec(address);
  if (!m) return undefined;
  const octets = [m[1], m[2], m[3], m[4]].map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return `${octets[0]}.${octets[1]}.${octets[2]}.0/24`;
}

/** The eight 16-bit groups of an IPv6 literal, or undefined when it is not one. */
function ipv6Groups(address: string): number[] | undefined {
  const zone = address.indexOf('%');
  const text = zone === -1 ? address : address.slice(0, zone);
  if (text.length === 0 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const m = IPV4.exec(piece);
        if (!m) return undefined;
        const o = [m[1], m[2], m[3], m[4]].map(Number);
        if (o.some((x) => x > 255)) return undefined;
        out.push((o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return undefined;
      out.push(parseInt(piece, 16));
    }
    return out;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/**
 * The coarse client key kept for a client address: `a.b.c.0/24` for IPv4 (and for
 * IPv4-mapped IPv6), `xxxx:xxxx:xxxx::/48` for IPv6; undefined for anything else.
 * Nothing finer than this prefix is ever stored.
 */
export function clientPrefix(address: string): string | undefined {
  const v4 = ipv4Prefix(address);
  if (v4) return v4;
  const groups = ipv6Groups(address);
  if (!groups) return undefined;
  const mapped = groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff;
  if (mapped) return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.0/24`;
  return `${groups[0]!.toString(16)}:${groups[1]!.toString(16)}:${groups[2]!.toString(16)}::/48`;
}

/**
 * Who counts as one reporter of client measurements: the IPv4 address itself (also
 * for IPv4-mapped IPv6), or the IPv6 /64 (`xxxx:xxxx:xxxx:xxxx::/64`), since one host
 * commonly holds a whole /64; undefined for anything else. Kept in memory only.
 */
export function reporterKey(address: string): string | undefined {
  const v4 = IPV4.exec(address);
  if (v4) return ipv4Prefix(address) === undefined ? undefined : [v4[1], v4[2], v4[3], v4[4]].map(Number).join('.');
  const g = ipv6Groups(address);
  if (!g) return undefined;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) return `${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  return `${g[0]!.toString(16)}:${g[1]!.toString(16)}:${g[2]!.toString(16)}:${g[3]!.toString(16)}::/64`;
}
