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
 *
 * Answers are read as bytes: the head is found and its Content-Length parsed, the body
 * is counted and kept as received, and decoded only when the caller asks
 * ({@link Answer.text}); the bench reads few bodies, and decoding every 8 kB route
 * answer was about a seventh of the generator's CPU at 5,000 routes/s (V8 profile).
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';

/** A request's answer body, decoded on demand. */
export interface Answer {
  /** The body as UTF-8 text ('' when the request failed). */
  text(): string;
}

/** Called once per request: whether it got a 200, its latency in ms, its body. */
export type Done = (ok: boolean, ms: number, body: Answer) => void;

interface Pending {
  readonly wire: string;
  readonly startedMs: number;
  readonly done: Done;
}

interface Conn {
  socket: net.Socket;
  current: Pending | undefined;
  /** What has arrived of the current answer. */
  chunks: Buffer[];
  received: number;
  /** Bytes of head + blank line, once seen; -1 before. */
  headBytes: number;
  /** Head + body bytes, once the head is parsed; -1 before. */
  totalBytes: number;
  status: number;
}

const EMPTY: Answer = { text: () => '' };
const HEAD_END = Buffer.from('\r\n\r\n');

class BufferAnswer implements Answer {
  constructor(
    private readonly chunks: readonly Buffer[],
    private readonly from: number,
    private readonly to: number,
  ) {}

  text(): string {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    return all.toString('utf8', this.from, this.to);
  }
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
    return new Promise((resolve) => this.call(method, path, body, (ok, ms, answer) => resolve({ ok, ms, text: answer.text() })));
  }

  /** Closes every connection; queued requests are dropped (still counted in {@link inFlight}). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const conn of this.conns) conn.socket.destroy();
  }

  private open(): Conn {
    const conn: Conn = { socket: net.connect(this.port, '127.0.0.1'), current: undefined, chunks: [], received: 0, headBytes: -1, totalBytes: -1, status: 0 };
    conn.socket.setNoDelay(true);
    conn.socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    conn.socket.on('error', () => undefined);
    conn.socket.on('close', () => {
      const failed = conn.current;
      conn.current = undefined;
      const at = this.conns.indexOf(conn);
      if (at !== -1) this.conns.splice(at, 1);
      const idleAt = this.idle.indexOf(conn);
      if (idleAt !== -1) this.idle.splice(idleAt, 1);
      if (failed) this.finish(failed, false, EMPTY);
      if (!this.closed) this.next(this.open());
    });
    this.conns.push(conn);
    this.idle.push(conn);
    return conn;
  }

  private start(conn: Conn, pending: Pending): void {
    conn.current = pending;
    conn.chunks = [];
    conn.received = 0;
    conn.headBytes = -1;
    conn.totalBytes = -1;
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

  private onData(conn: Conn, chunk: Buffer): void {
    if (!conn.current) return;
    conn.chunks.push(chunk);
    conn.received += chunk.length;
    if (conn.headBytes === -1) {
      const all = conn.chunks.length === 1 ? chunk : Buffer.concat(conn.chunks);
      const headEnd = all.indexOf(HEAD_END);
      if (headEnd === -1) return;
      conn.chunks = [all];
      conn.headBytes = headEnd + 4;
      const head = all.toString('latin1', 0, headEnd);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? Number.NaN);
      if (Number.isNaN(length)) return void conn.socket.destroy(); // not what this client reads: fail the request
      conn.totalBytes = conn.headBytes + length;
      conn.status = Number(head.slice(9, 12));
    }
    if (conn.received < conn.totalBytes) return;
    const pending = conn.current;
    conn.current = undefined;
    this.finish(pending, conn.status === 200, new BufferAnswer(conn.chunks, conn.headBytes, conn.totalBytes));
    this.next(conn);
  }

  private finish(pending: Pending, ok: boolean, body: Answer): void {
    this.inFlight--;
    pending.done(ok, performance.now() - pending.startedMs, body);
  }
}
