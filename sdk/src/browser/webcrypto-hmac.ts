/**
 * HMAC-SHA256 with WebCrypto (`crypto.subtle`), for a `TunnelClient` in a browser:
 * asynchronous, so the client queues its MACs as jobs (`pollMacJob`) and the driver
 * hands each result back (`handleMacResult`). {@link serveMacJobs} is that loop. Works
 * wherever `globalThis.crypto.subtle` exists: browsers in a secure context (https:
 * or http://localhost), workers, Node ≥ 20 and Deno.
 */
import type { HmacSha256 } from '../../../proto/src/session-mac.js';
import type { MacJob } from '../core/tunnel-client.js';

/**
 * The slice of WebCrypto used here. Declared locally because the project compiles
 * against lib ES2022 + @types/node, without the DOM library.
 */
export interface SubtleCryptoHmac {
  importKey(format: 'raw', keyData: Uint8Array, algorithm: { name: 'HMAC'; hash: 'SHA-256' }, extractable: false, usages: ['sign']): Promise<unknown>;
  sign(algorithm: 'HMAC', key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
}

/** `globalThis.crypto.subtle`, or undefined outside a secure context. */
function defaultSubtle(): SubtleCryptoHmac | undefined {
  return (globalThis as { crypto?: { subtle?: SubtleCryptoHmac } }).crypto?.subtle;
}

/**
 * An asynchronous {@link HmacSha256} over WebCrypto. Imported keys are cached per key
 * array (a session has one key), so each MAC costs one `sign`. `subtle` defaults to
 * `globalThis.crypto.subtle`; a `TypeError` says so when there is none (a page served
 * over plain http from another host than localhost is not a secure context).
 */
export function webCryptoHmacSha256(subtle: SubtleCryptoHmac | undefined = defaultSubtle()): HmacSha256 {
  if (subtle === undefined) throw new TypeError('webCryptoHmacSha256: crypto.subtle is not available; serve the page over https (or from localhost)');
  const keys = new WeakMap<Uint8Array, Promise<unknown>>();
  return {
    mode: 'async',
    async sign(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
      let imported = keys.get(key);
      if (imported === undefined) keys.set(key, (imported = subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])));
      return new Uint8Array(await subtle.sign('HMAC', await imported, data));
    },
  };
}

/** What {@link serveMacJobs} drives: the MAC half of a `TunnelClient`. */
export interface MacJobSource {
  pollMacJob(): MacJob | undefined;
  handleMacResult(nowMs: number, id: number, mac: Uint8Array): void;
}

/**
 * Takes every queued MAC job from `client`, computes it with `hmac` and hands the result
 * back with the time `nowMs()` says then, calling `afterInput` after each (the driver
 * drains the client's outputs there, as after any input). Call it whenever the driver
 * drains the client's outputs. A MAC that fails is dropped and `onError` hears of it: a
 * relay repeats its path challenge; a Close whose MAC failed is not sent (the relay's
 * idle timeout ends that session).
 */
export function serveMacJobs(client: MacJobSource, hmac: HmacSha256, nowMs: () => number, afterInput: () => void, onError: (error: unknown) => void = () => {}): void {
  for (let job = client.pollMacJob(); job !== undefined; job = client.pollMacJob()) {
    const id = job.id;
    Promise.resolve(hmac.sign(job.key, job.data)).then(
      (mac) => {
        client.handleMacResult(nowMs(), id, mac);
        afterInput();
      },
      onError,
    );
  }
}
