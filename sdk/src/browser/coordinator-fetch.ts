/**
 * What the browser `connect()` asks the coordinator, over `fetch` (the Node SDK's
 * `CoordinatorClient` imports `node:crypto` for relay identities, so the browser gets
 * this slice instead): `GET /v1/route` for candidates, `POST /v1/reports` for path
 * reports. The page must be allowed to call the coordinator: same origin (a reverse
 * proxy in front of both), or CORS on the coordinator's side.
 */
import { API_PATHS, routeQuery, type ClientPathReport, type RouteAnswer } from '../../../proto/src/api/contract.js';
import { ErrorCode, SlipstreamError } from '../../../proto/src/errors.js';

/** A relay the browser can reach: its id, its signaling URL and the coordinator's figures. */
export interface BrowserCandidate {
  /** The relay's id, as the coordinator names it. */
  readonly id: string;
  /** The relay's WebRTC signaling URL (`webrtcUrl` in the route answer). */
  readonly webrtcUrl: string;
  /** The coordinator's whole-path estimate, ms. */
  readonly estimateMs: number;
  /** Relay→origin part (through the exit, when there is one), ms. */
  readonly restMs: number;
}

/** The question: origin, hints, the ticket's exit relay. */
export interface RouteQuestion {
  /** Origin name, as the coordinator knows it. */
  readonly origin: string;
  /** Region hint for the ranking. Default none. */
  readonly region?: string;
  /** Client latitude, degrees (with `longitude`, or neither). Default none. */
  readonly latitude?: number;
  /** Client longitude, degrees (with `latitude`, or neither). Default none. */
  readonly longitude?: number;
  /** The ticket's exit relay: candidates are ranked by the path through it. Default none. */
  readonly exitRelay?: string;
}

/**
 * Candidates a browser can use from a route answer: relays with a WebRTC entry
 * (`webrtcUrl`), direct routes, and with `exitRelay` the routes through that exit.
 * `skipped` hears of each relay left out for having no browser entry.
 */
export function browserCandidatesFromRoute(answer: RouteAnswer, exitRelay?: string, skipped?: string[]): BrowserCandidate[] {
  const out: BrowserCandidate[] = [];
  for (const c of answer.candidates) {
    if (c.kind !== 'direct' && (exitRelay === undefined || c.exitRelayId !== exitRelay)) continue;
    if (typeof c.webrtcUrl !== 'string' || !/^https?:\/\//.test(c.webrtcUrl)) {
      skipped?.push(String(c.relayId).slice(0, 64));
      continue;
    }
    out.push({ id: c.relayId, webrtcUrl: c.webrtcUrl, estimateMs: c.costMs, restMs: (c.legs.relayToRelay?.rttMs ?? 0) + c.legs.relayToOrigin.rttMs });
  }
  return out;
}

async function call(base: string, path: string, timeoutMs: number, init: { method: string; body?: string } = { method: 'GET' }): Promise<unknown> {
  const url = `${base.replace(/\/+$/, '')}${path}`;
  let res: Response;
  try {
    res = await fetch(url, { method: init.method, body: init.body, headers: init.body === undefined ? {} : { 'content-type': 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    throw new SlipstreamError(ErrorCode.CoordinatorUnreachable, `cannot reach the coordinator at ${base} (${error instanceof Error ? error.message : String(error)}); check the URL, and that the page may call it (same origin or CORS)`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const e = (parsed as { error?: { code?: string; reason?: string } } | undefined)?.error;
    if (e?.code === 'unknown_origin') throw new SlipstreamError(ErrorCode.UnknownOrigin, `the coordinator at ${base} does not know this origin; check the name against GET /v1/origins`);
    throw new SlipstreamError(ErrorCode.CoordinatorUnreachable, `the coordinator at ${base} answered ${res.status} ${e?.code ?? ''}: ${e?.reason ?? text.slice(0, 200)}`);
  }
  return parsed;
}

/** `GET /v1/route` (direct routes; through `exitRelay` when given). Rejects with a `SlipstreamError` (`SLIP_ERR_UNKNOWN_ORIGIN`, `SLIP_ERR_COORDINATOR_UNREACHABLE`). */
export async function fetchRoute(base: string, question: RouteQuestion, timeoutMs: number): Promise<RouteAnswer> {
  const query = routeQuery({ origin: question.origin, region: question.region, latitude: question.latitude, longitude: question.longitude, twoHop: false, exit: question.exitRelay });
  const answer = (await call(base, `${API_PATHS.route}?${query}`, timeoutMs)) as RouteAnswer | undefined;
  if (answer === undefined || !Array.isArray(answer.candidates)) throw new SlipstreamError(ErrorCode.CoordinatorUnreachable, `the coordinator at ${base} answered GET ${API_PATHS.route} without a candidate list`);
  return answer;
}

/** `POST /v1/reports`: the client's path figures (best effort; failures are the caller's to ignore). */
export async function postReports(base: string, reports: readonly ClientPathReport[], timeoutMs: number): Promise<void> {
  await call(base, API_PATHS.clientReports, timeoutMs, { method: 'POST', body: JSON.stringify({ reports }) });
}
