/**
 * The load generator's HTTP client of `slipstream bench coordinator`: plain HTTP/1.1
 * over a pool of keep-alive TCP connections, one request in flight per connection,
 * requests queued (first in, first out) while every connection is busy, written and
 * parsed by hand. `node:http`'s client costs ~0.3 ms of CPU per request on the
 * project's 2-core machine, so at 5,000 routes/s the generator alone would need more
 * than a core and the bench would measure itself; this one costs a fraction of that.
 * Latency runs from the moment a request is asked for (queueing included, as an open
 * loop must count it) to the last byte of its answer. Benchmark-only code: it expects
 * answers with a Content-Length (the coordinator sends one).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

/** Called once per request: whether it got a 200, its latency in ms, its body. */
export type Done = (ok: boolean, ms: number, text: string) => void;

interface Pending {
  readonly wire: string;
  readonly startedMs: number;
  readonly done: Done;
}

interface Conn {
  socket: net.Socket;
  current: Pending | undefined;
  buffer: string;
}

/** See the module comment. */
export class RawHttpCaller {
  /** Requests asked for and not yet answered (queued or on the wire). */
  inFlight = 0;
  private readonly conns: Conn[] = [];
  private readonly idle: Conn[] = [];
  private readonly queue: Pending[] = [];
  private queueHead = 0;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  /** `connections`: the pool size; `timeoutMs`: a request older than this fails and its connection is replaced. */
  constructor(
    private readonly port: number,
    private readonly authorization: string,
    connections: number,
    private readonly timeoutMs: number,
  ) {
    for (let i = 0; i < connections; i++) this.open();
    this.sweeper = setInterval(() => {
      const now = performance.now();
      for (const conn of this.conns) if (conn.current && now - conn.current.startedMs > this.timeoutMs) conn.socket.destroy();
    }, 250);
  }

  /** Sends a request (see the module comment); `forwardedFor` becomes its X-Forwarded-For. */
  call(method: string, path: string, body: string | undefined, done: Done, forwardedFor?: string): void {
    let wire = `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${this.authorization}\r\n`;
    if (forwardedFor) wire += `x-forwarded-for: ${forwardedFor}\r\n`;
    wire += body !== undefined ? `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}` : '\r\n';
    this.inFlight++;
    const pending = { wire, startedMs: performance.now(), done };
    const conn = this.idle.pop();
    if (conn) this.start(conn, pending);
    else this.queue.push(pending);
  }

  /** {@link call} as a promise. */
  callAsync(method: string, path: string, body?: string): Promise<{ ok: boolean; ms: number; text: string }> {
    return new Promise((resolve) => this.call(method, path, body, (ok, ms, text) => resolve({ ok, ms, text })));
  }

  /** Closes every connection; queued requests are dropped (still counted in {@link inFlight}). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const conn of this.conns) conn.socket.destroy();
  }

  private open(): Conn {
    const conn: Conn = { socket: net.connect(this.port, '127.0.0.1'), current: undefined, buffer: '' };
    conn.socket.setNoDelay(true);
    conn.socket.setEncoding('utf8');
    conn.socket.on('data', (chunk: string) => this.onData(conn, chunk));
    conn.socket.on('error', () => undefined);
    conn.socket.on('close', () => {
      const failed = conn.current;
      conn.current = undefined;
      const at = this.conns.indexOf(conn);
      if (at !== -1) this.conns.splice(at, 1);
      const idleAt = this.idle.indexOf(conn);
      if (idleAt !== -1) this.idle.splice(idleAt, 1);
      if (failed) this.finish(failed, false, '');
      if (!this.closed) this.next(this.open());
    });
    this.conns.push(conn);
    this.idle.push(conn);
    return conn;
  }

  private start(conn: Conn, pending: Pending): void {
    conn.current = pending;
    conn.buffer = '';
    conn.socket.write(pending.wire);
  }

  private next(conn: Conn): void {
    const idleAt = this.idle.indexOf(conn);
    if (idleAt !== -1) this.idle.splice(idleAt, 1);
    if (this.queueHead < this.queue.length) {
      const pending = this.queue[this.queueHead++]!;
      if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
        this.queue.splice(0, this.queueHead);
        this.queueHead = 0;
      }
      this.start(conn, pending);
    } else this.idle.push(conn);
  }

  private onData(conn: Conn, chunk: string): void {
    conn.buffer += chunk;
    const headEnd = conn.buffer.indexOf('\r\n\r\n');
    if (headEnd === -1 || !conn.current) return;
    const head = conn.buffer.slice(0, headEnd);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? Number.NaN);
    if (Number.isNaN(length)) return void conn.socket.destroy(); // not what this client reads: fail the request
    const body = conn.buffer.slice(headEnd + 4);
    // Content-Length counts bytes; the buffer holds UTF-8-decoded text (the answers are ASCII but for names).
    if (Buffer.byteLength(body) < length) return;
    const status = Number(head.slice(9, 12));
    const pending = conn.current;
    conn.current = undefined;
    conn.buffer = '';
    this.finish(pending, status === 200, body);
    this.next(conn);
  }

  private finish(pending: Pending, ok: boolean, text: string): void {
    this.inFlight--;
    pending.done(ok, performance.now() - pending.startedMs, text);
  }
}
