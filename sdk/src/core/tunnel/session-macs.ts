/**
 * The session-MAC room of a `TunnelClient`: the client Close's MAC, PathResponse MACs
 * and the check of a relay's Close, computed with the {@link HmacSha256} the client was
 * given. A synchronous one (Node's `node:crypto`) is called in place, so a Node client
 * answers a path challenge during the input that brought it, as before. An
 * asynchronous one (WebCrypto in a browser) is never awaited here: the work becomes a
 * {@link MacJob} the driver takes with `TunnelClient.pollMacJob`, computes, and hands
 * back with `TunnelClient.handleMacResult(now, id, mac)` — an input like any other, so
 * the core stays sans-IO and a run replays from its inputs. Until then a Close waits
 * here, a path challenge stays unanswered (the relay drops packets from the new address
 * meanwhile and challenges again on the next) and a relay's Close is not acted on.
 *
 * Imports only proto/ and the leaf `types.ts`: the context builds it, and the context
 * imports no room.
 */
import { closeMacInput, bytesEqualConstantTime, HMAC_SHA256_BYTES, pathMacInput, relayCloseMacInput, type HmacSha256 } from '../../../../proto/src/session-mac.js';
import type { Endpoint } from '../../../../proto/src/transport.js';
import { buildClientCloseWithMac, CLOSE_MAC_BYTES, PATH_NONCE_BYTES } from '../../../../proto/src/wire-frames.js';
import type { ClientTransmit, MacJob } from './types.js';

/**
 * Most MAC jobs waiting for the driver; beyond it new path challenges and relay Closes
 * are dropped (a relay challenges again on the client's next packet from the new
 * address; a dropped Close leaves that relay to the liveness rules).
 */
export const MAC_JOBS_WAITING_MAX = 64;

/** What a finished job lets the composer do. */
export type MacCompletion =
  /** Answer relay `relayId`'s path challenge (`nonce`) with `mac`. */
  | { readonly kind: 'path'; readonly relayId: string; readonly nonce: Uint8Array; readonly mac: Uint8Array }
  /** Relay `relayId`'s Close (`body`): `authentic` is the reason when its MAC verified, else undefined. */
  | { readonly kind: 'relayClose'; readonly relayId: string; readonly body: Uint8Array; readonly authentic: Uint8Array | undefined };

type Waiting = { readonly kind: 'close' } | { readonly kind: 'path'; readonly relayId: string; readonly nonce: Uint8Array } | { readonly kind: 'relayClose'; readonly relayId: string; readonly body: Uint8Array };

/** The session-MAC room; see the module comment. */
export class SessionMacs {
  private readonly signSync: ((key: Uint8Array, data: Uint8Array) => Uint8Array) | undefined;
  /** The client Close's 16-byte MAC (constant for the session), once known. */
  private closeMac: Uint8Array | undefined;
  /** Where Closes go once {@link closeMac} is known. */
  private readonly closesWaiting: Endpoint[] = [];
  private readonly jobs: MacJob[] = [];
  private readonly waiting = new Map<number, Waiting>();
  private nextJobId = 1;

  constructor(
    hmac: HmacSha256,
    private readonly sessionKey: Uint8Array,
    private readonly sessionIdHigh: number,
    private readonly sessionIdLow: number,
    private readonly transmits: ClientTransmit[],
  ) {
    const input = closeMacInput(sessionIdHigh, sessionIdLow);
    if (hmac.mode === 'sync') {
      this.signSync = hmac.sign;
      this.closeMac = hmac.sign(sessionKey, input).slice(0, CLOSE_MAC_BYTES);
    } else {
      this.signSync = undefined;
      this.enqueue({ kind: 'close' }, input);
    }
  }

  /** Whether MACs are computed in place (a synchronous HMAC). */
  get synchronous(): boolean {
    return this.signSync !== undefined;
  }

  /** Sends the client's authenticated Close to `to`: now, or once its MAC is known. */
  sendClose(to: Endpoint): void {
    if (this.closeMac !== undefined) this.transmits.push({ to, bytes: buildClientCloseWithMac(this.sessionIdHigh, this.sessionIdLow, this.closeMac) });
    else this.closesWaiting.push(to);
  }

  /** The PathResponse MAC for `nonce` now, or undefined when it was queued (then it comes back as a `path` completion). */
  pathMac(relayId: string, challengeBody: Uint8Array): Uint8Array | undefined {
    const nonce = challengeBody.subarray(0, PATH_NONCE_BYTES);
    const input = pathMacInput(this.sessionIdHigh, this.sessionIdLow, nonce);
    if (this.signSync !== undefined) return this.signSync(this.sessionKey, input);
    this.enqueue({ kind: 'path', relayId, nonce: nonce.slice() }, input);
    return undefined;
  }

  /**
   * Checks a relay's Close body (reason ‖ 16-byte MAC). Returns `{ authentic }` (the
   * reason, or undefined when unauthenticated) when decided now; undefined when it was
   * queued (then it comes back as a `relayClose` completion).
   */
  checkRelayClose(relayId: string, body: Uint8Array): { authentic: Uint8Array | undefined } | undefined {
    if (body.length <= CLOSE_MAC_BYTES) return { authentic: undefined };
    const reason = body.subarray(0, body.length - CLOSE_MAC_BYTES);
    const input = relayCloseMacInput(this.sessionIdHigh, this.sessionIdLow, reason);
    if (this.signSync !== undefined) return { authentic: this.verifies(this.signSync(this.sessionKey, input), body) ? reason : undefined };
    this.enqueue({ kind: 'relayClose', relayId, body: body.slice() }, input);
    return undefined;
  }

  /** Output: the next MAC to compute (asynchronous HMAC only), or undefined. */
  pollJob(): MacJob | undefined {
    return this.jobs.shift();
  }

  /**
   * Input: job `id`'s MAC (HMAC-SHA256 of its `data` under its `key`). Returns what the
   * composer should do with it, or undefined (a Close's MAC: the waiting Closes went
   * out; an unknown id or a short MAC: ignored).
   */
  complete(id: number, mac: Uint8Array): MacCompletion | undefined {
    const w = this.waiting.get(id);
    if (w === undefined || mac.length < HMAC_SHA256_BYTES) return undefined;
    this.waiting.delete(id);
    switch (w.kind) {
      case 'close':
        this.closeMac = mac.slice(0, CLOSE_MAC_BYTES);
        for (const to of this.closesWaiting.splice(0)) this.sendClose(to);
        return undefined;
      case 'path':
        return { kind: 'path', relayId: w.relayId, nonce: w.nonce, mac: mac.slice(0, HMAC_SHA256_BYTES) };
      case 'relayClose':
        return { kind: 'relayClose', relayId: w.relayId, body: w.body, authentic: this.verifies(mac, w.body) ? w.body.subarray(0, w.body.length - CLOSE_MAC_BYTES) : undefined };
    }
  }

  /** Whether `body` ends with the first {@link CLOSE_MAC_BYTES} of `mac`. */
  private verifies(mac: Uint8Array, body: Uint8Array): boolean {
    return bytesEqualConstantTime(mac.subarray(0, CLOSE_MAC_BYTES), body.subarray(body.length - CLOSE_MAC_BYTES));
  }

  private enqueue(w: Waiting, data: Uint8Array): void {
    // The Close's job is the first and always kept; others are dropped when too many wait (a relay repeats a challenge).
    if (w.kind !== 'close' && this.waiting.size >= MAC_JOBS_WAITING_MAX) return;
    const id = this.nextJobId++;
    this.waiting.set(id, w);
    this.jobs.push({ id, key: this.sessionKey, data });
  }
}
