/**
 * A small typed event emitter for the browser SDK (Node's `EventEmitter` is not in
 * browsers): `on`, `once`, `off`, `emit`, with the Node SDK's method names so code
 * written against one `Connection` reads the same against the other. A listener that
 * throws does not stop the others or the SDK: the error is rethrown on a later task
 * (so it reaches the page's `error` handler and the console) as a browser's
 * `EventTarget` does.
 */

/** A stored listener (its arguments are checked where it is added). */
type Listener = (...args: never[]) => void;

/** Listener lists by event name; `Events` maps each name to its argument tuple. */
export class Emitter<Events extends { [K in keyof Events]: unknown[] }> {
  private readonly listeners = new Map<keyof Events, Listener[]>();

  /** Adds `listener` for `event`. */
  on<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const list = this.listeners.get(event) ?? [];
    list.push(listener as unknown as Listener);
    this.listeners.set(event, list);
    return this;
  }

  /** Adds `listener` for the next `event` only. */
  once<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const wrapper = (...args: Events[K]): void => {
      this.off(event, wrapper);
      listener(...args);
    };
    return this.on(event, wrapper);
  }

  /** Removes `listener` from `event`. */
  off<K extends keyof Events>(event: K, listener: (...args: Events[K]) => void): this {
    const list = this.listeners.get(event);
    if (list !== undefined) {
      const i = list.indexOf(listener as unknown as Listener);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  /** How many listeners `event` has. */
  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.length ?? 0;
  }

  /** Calls `event`'s listeners with `args`; whether it had any. */
  protected emit<K extends keyof Events>(event: K, ...args: Events[K]): boolean {
    const list = this.listeners.get(event);
    if (list === undefined || list.length === 0) return false;
    for (const listener of [...list]) {
      try {
        (listener as unknown as (...a: Events[K]) => void)(...args);
      } catch (error) {
        setTimeout(() => {
          throw error;
        }, 0);
      }
    }
    return true;
  }
}
