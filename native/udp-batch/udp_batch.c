// Batched UDP I/O for Node.js (Linux): recvmmsg/sendmmsg on non-blocking sockets polled
// by libuv (uv_poll on the loop Node runs), with numeric address ids instead of an
// address object per datagram. Only node_api.h (N-API 8) and uv.h: ABI-stable across
// Node majors. The JS contract is udp-batch.d.ts; its header comment is the reference.
//
// Layout shared with JS (Int32Array views of ArrayBuffers this module allocates through
// N-API, so the memory is V8's and no external buffer is needed):
//   recvMeta: per datagram i, [4i] offset in recvArena, [4i+1] length, [4i+2] address id,
//             [4i+3] source port; at NEW_BASE = 4*batchMax: the count of address ids
//             (re)assigned by this receive, then those ids (JS asks their text once).
//   sendMeta: per message i, [4i] socket id, [4i+1] offset in sendArena, [4i+2] length,
//             [4i+3] address id, or -1 for "the socket's connected peer".
// Send: a run of messages on one socket to one destination, all of one length (the last
//       may be shorter), leaves as one UDP GSO message (UDP_SEGMENT: the kernel builds
//       and routes one buffer and splits it into the same datagrams on the wire) where
//       the kernel and route take it; otherwise each message alone.
// Address ids: a fixed-capacity table (hash chains) of sockaddrs. When full, a clock
// evicts the oldest entry not used in the current epoch (an epoch ends at each send()),
// so ids handed out in one batch stay valid until that batch's transmits are sent.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <linux/filter.h>
#include <netinet/udp.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

#define SOCKETS_MAX 65536
#define SEND_MAX 1024
// UDP GSO: segments per message (the kernel's UDP_MAX_SEGMENTS was 64 until 6.x), and
// bytes per message (under IPv4's 65,507-byte datagram limit).
#define GSO_SEGMENTS_MAX 64
#define GSO_BYTES_MAX 60000

typedef struct {
  struct sockaddr_storage sa;
  socklen_t len;
  uint32_t epoch;
  int32_t next;     // hash chain; -1 ends
  uint8_t used;     // holds an address
  uint8_t ref;      // second chance for the clock
} AddrEntry;

struct Ctx;

typedef struct {
  uv_poll_t poll;
  struct Ctx* ctx;
  int fd;
  int id;
  int family;
  int polling;
  int gso_off;  // the kernel or route refused UDP GSO (EIO, EOPNOTSUPP): single messages only
} Sock;

typedef struct Ctx {
  napi_env env;
  napi_ref on_readable;
  napi_async_context async;
  napi_ref recv_arena_ref, recv_meta_ref, send_arena_ref, send_meta_ref;
  uint8_t* recv_arena;
  int32_t* recv_meta;
  uint8_t* send_arena;
  int32_t* send_meta;
  size_t send_arena_bytes;
  int batch_max;
  size_t slot_bytes;
  struct mmsghdr* rmsgs;
  struct iovec* riovs;
  struct sockaddr_storage* raddrs;
  struct mmsghdr smsgs[SEND_MAX];
  struct iovec siovs[SEND_MAX];
  struct sockaddr_storage saddrs[SEND_MAX];
  int segs[SEND_MAX];   // datagrams carried by smsgs[n] (> 1: a GSO message)
  char sctrl[SEND_MAX][CMSG_SPACE(sizeof(uint16_t))];
  double gso_messages, gso_datagrams;
  uint8_t* sent_mark;
  // address table
  AddrEntry* entries;
  int32_t* buckets;
  uint32_t capacity, bucket_mask, count, clock_hand, epoch;
  // sockets
  Sock** socks;
  int socks_len;
  int free_hint;
  // counters
  double truncated, recv_errors, send_errors, evictions, table_full;
} Ctx;

// ------------------------------------------------------------------ helpers

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, "ERR_UDP_BATCH", "udp-batch: N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static const char* errno_code(int e) {
  switch (e) {
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EBADF: return "EBADF";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, const char* what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, strerror(e), errno_code(e));
  napi_throw_error(env, errno_code(e), msg);
  return NULL;
}

static Ctx* get_ctx(napi_env env, napi_value v) {
  void* p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udp-batch: the first argument must be a context from createContext()");
    return NULL;
  }
  return (Ctx*)p;
}

static int32_t get_i32(napi_env env, napi_value v, int32_t dflt) {
  int32_t out = dflt;
  if (napi_get_value_int32(env, v, &out) != napi_ok) return dflt;
  return out;
}

static Sock* get_sock(napi_env env, Ctx* ctx, napi_value v) {
  int32_t id = get_i32(env, v, -1);
  if (id < 0 || id >= ctx->socks_len || ctx->socks[id] == NULL) {
    napi_throw_range_error(env, "ERR_UDP_BATCH_SOCKET", "udp-batch: no open socket with that id");
    return NULL;
  }
  return ctx->socks[id];
}

static napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

// ------------------------------------------------------------------ address table

static uint32_t addr_hash(const struct sockaddr_storage* sa) {
  uint32_t h = 2166136261u;
  const uint8_t* p;
  size_t n;
  uint16_t port;
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in* s = (const struct sockaddr_in*)sa;
    p = (const uint8_t*)&s->sin_addr;
    n = 4;
    port = s->sin_port;
  } else {
    const struct sockaddr_in6* s = (const struct sockaddr_in6*)sa;
    p = (const uint8_t*)&s->sin6_addr;
    n = 16;
    port = s->sin6_port;
    h ^= s->sin6_scope_id;
    h *= 16777619u;
  }
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 16777619u;
  }
  h ^= port;
  h *= 16777619u;
  h ^= port >> 8;
  h *= 16777619u;
  return h ^ (h >> 15);
}

static int addr_equal(const struct sockaddr_storage* a, const struct sockaddr_storage* b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in* x = (const struct sockaddr_in*)a;
    const struct sockaddr_in* y = (const struct sockaddr_in*)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6* x = (const struct sockaddr_in6*)a;
  const struct sockaddr_in6* y = (const struct sockaddr_in6*)b;
  return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

static void addr_unlink(Ctx* ctx, uint32_t id) {
  AddrEntry* e = &ctx->entries[id];
  uint32_t b = addr_hash(&e->sa) & ctx->bucket_mask;
  int32_t* link = &ctx->buckets[b];
  while (*link >= 0) {
    if ((uint32_t)*link == id) {
      *link = e->next;
      break;
    }
    link = &ctx->entries[*link].next;
  }
  e->used = 0;
  ctx->count--;
}

// Finds or adds `sa`; *fresh says whether the id was (re)assigned now. -1 when the table
// is full of entries used in the current epoch.
static int32_t addr_intern(Ctx* ctx, const struct sockaddr_storage* sa, socklen_t len, int* fresh) {
  uint32_t b = addr_hash(sa) & ctx->bucket_mask;
  for (int32_t i = ctx->buckets[b]; i >= 0; i = ctx->entries[i].next) {
    AddrEntry* e = &ctx->entries[i];
    if (addr_equal(&e->sa, sa)) {
      e->epoch = ctx->epoch;
      e->ref = 1;
      *fresh = 0;
      return i;
    }
  }
  uint32_t id;
  if (ctx->count < ctx->capacity) {
    // Unused slots are taken in order first; the clock hand starts after them.
    id = ctx->clock_hand;
    while (ctx->entries[id].used) id = (id + 1) % ctx->capacity;
    ctx->clock_hand = (id + 1) % ctx->capacity;
  } else {
    uint32_t scanned = 0;
    for (;;) {
      if (scanned++ > 2 * ctx->capacity) {
        ctx->table_full++;
        return -1;
      }
      id = ctx->clock_hand;
      ctx->clock_hand = (id + 1) % ctx->capacity;
      AddrEntry* e = &ctx->entries[id];
      if (e->epoch == ctx->epoch) continue;
      if (e->ref) {
        e->ref = 0;
        continue;
      }
      break;
    }
    addr_unlink(ctx, id);
    ctx->evictions++;
    b = addr_hash(sa) & ctx->bucket_mask;
  }
  AddrEntry* e = &ctx->entries[id];
  memset(&e->sa, 0, sizeof e->sa);
  memcpy(&e->sa, sa, len);
  e->len = len;
  e->epoch = ctx->epoch;
  e->ref = 1;
  e->used = 1;
  e->next = ctx->buckets[b];
  ctx->buckets[b] = (int32_t)id;
  ctx->count++;
  *fresh = 1;
  return (int32_t)id;
}

// ------------------------------------------------------------------ context

static void ctx_finalize(napi_env env, void* data, void* hint) {
  Ctx* ctx = (Ctx*)data;
  for (int i = 0; i < ctx->socks_len; i++) {
    Sock* s = ctx->socks[i];
    if (s == NULL) continue;
    // A context collected with sockets open: stop polling; the handle frees itself.
    if (s->polling) uv_poll_stop(&s->poll);
    close(s->fd);
    s->ctx = NULL;
    uv_close((uv_handle_t*)&s->poll, (uv_close_cb)free);
  }
  free(ctx->socks);
  free(ctx->entries);
  free(ctx->buckets);
  free(ctx->rmsgs);
  free(ctx->riovs);
  free(ctx->raddrs);
  free(ctx->sent_mark);
  free(ctx);
}

static int make_buffer(napi_env env, size_t bytes, int as_int32, napi_value* out_view, void** data, napi_ref* ref) {
  napi_value ab;
  if (napi_create_arraybuffer(env, bytes, data, &ab) != napi_ok) return 0;
  memset(*data, 0, bytes);
  if (as_int32) {
    if (napi_create_typedarray(env, napi_int32_array, bytes / 4, ab, 0, out_view) != napi_ok) return 0;
  } else if (napi_create_typedarray(env, napi_uint8_array, bytes, ab, 0, out_view) != napi_ok) {
    return 0;
  }
  return napi_create_reference(env, ab, 1, ref) == napi_ok;
}

// createContext(onReadable, batchMax, slotBytes, addressCapacity, sendArenaBytes)
static napi_value CreateContext(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udp-batch: createContext(onReadable, ...) needs a function");
    return NULL;
  }
  int32_t batch = argc > 1 ? get_i32(env, argv[1], 64) : 64;
  int32_t slot = argc > 2 ? get_i32(env, argv[2], 65536) : 65536;
  int32_t cap = argc > 3 ? get_i32(env, argv[3], 65536) : 65536;
  int32_t send_bytes = argc > 4 ? get_i32(env, argv[4], 1 << 20) : 1 << 20;
  if (batch < 1 || batch > 1024 || slot < 64 || slot > 65536 || cap < 4 * batch || cap > (1 << 24) || send_bytes < 65536 || send_bytes > (64 << 20)) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "udp-batch: createContext: batchMax 1..1024, slotBytes 64..65536, addressCapacity 4*batchMax..2^24, sendArenaBytes 64 KiB..64 MiB");
    return NULL;
  }
  Ctx* ctx = calloc(1, sizeof(Ctx));
  if (ctx == NULL) return throw_errno(env, "createContext", ENOMEM);
  ctx->env = env;
  ctx->batch_max = batch;
  ctx->slot_bytes = (size_t)slot;
  ctx->capacity = (uint32_t)cap;
  uint32_t buckets = 1;
  while (buckets < (uint32_t)cap * 2) buckets <<= 1;
  ctx->bucket_mask = buckets - 1;
  ctx->entries = calloc(cap, sizeof(AddrEntry));
  ctx->buckets = malloc(sizeof(int32_t) * buckets);
  ctx->rmsgs = calloc(batch, sizeof(struct mmsghdr));
  ctx->riovs = calloc(batch, sizeof(struct iovec));
  ctx->raddrs = calloc(batch, sizeof(struct sockaddr_storage));
  ctx->sent_mark = calloc(SEND_MAX, 1);
  ctx->socks_len = 64;
  ctx->socks = calloc(ctx->socks_len, sizeof(Sock*));
  ctx->epoch = 1;
  if (!ctx->entries || !ctx->buckets || !ctx->rmsgs || !ctx->riovs || !ctx->raddrs || !ctx->sent_mark || !ctx->socks) {
    ctx_finalize(env, ctx, NULL);
    return throw_errno(env, "createContext", ENOMEM);
  }
  memset(ctx->buckets, 0xff, sizeof(int32_t) * buckets);
  napi_value recv_arena, recv_meta, send_arena, send_meta;
  void *ra, *rm, *sa, *sm;
  if (!make_buffer(env, (size_t)batch * slot, 0, &recv_arena, &ra, &ctx->recv_arena_ref) ||
      !make_buffer(env, sizeof(int32_t) * (4 * (size_t)batch + 1 + batch), 1, &recv_meta, &rm, &ctx->recv_meta_ref) ||
      !make_buffer(env, (size_t)send_bytes, 0, &send_arena, &sa, &ctx->send_arena_ref) ||
      !make_buffer(env, sizeof(int32_t) * 4 * SEND_MAX, 1, &send_meta, &sm, &ctx->send_meta_ref)) {
    ctx_finalize(env, ctx, NULL);
    napi_throw_error(env, "ENOMEM", "udp-batch: createContext: cannot allocate the arenas");
    return NULL;
  }
  ctx->recv_arena = ra;
  ctx->recv_meta = rm;
  ctx->send_arena = sa;
  ctx->send_meta = sm;
  ctx->send_arena_bytes = (size_t)send_bytes;
  for (int i = 0; i < batch; i++) {
    ctx->riovs[i].iov_base = ctx->recv_arena + (size_t)i * slot;
    ctx->riovs[i].iov_len = (size_t)slot;
  }
  napi_value name;
  CHECK(napi_create_reference(env, argv[0], 1, &ctx->on_readable));
  CHECK(napi_create_string_utf8(env, "udp-batch", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, NULL, name, &ctx->async));
  napi_value handle, result;
  CHECK(napi_create_external(env, ctx, ctx_finalize, NULL, &handle));
  CHECK(napi_create_object(env, &result));
  CHECK(napi_set_named_property(env, result, "handle", handle));
  CHECK(napi_set_named_property(env, result, "recvArena", recv_arena));
  CHECK(napi_set_named_property(env, result, "recvMeta", recv_meta));
  CHECK(napi_set_named_property(env, result, "sendArena", send_arena));
  CHECK(napi_set_named_property(env, result, "sendMeta", send_meta));
  CHECK(napi_set_named_property(env, result, "sendMessagesMax", num(env, SEND_MAX)));
  return result;
}

// ------------------------------------------------------------------ sockets

static void on_poll(uv_poll_t* handle, int status, int events) {
  Sock* s = (Sock*)handle->data;
  Ctx* ctx = s->ctx;
  if (ctx == NULL) return;
  if (status < 0) {
    // libuv stops a poll handle on POLLERR; on UDP that is an ICMP error queued on the
    // socket (a connected peer's port unreachable): read and clear it, and poll on.
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    ctx->recv_errors++;
    if (uv_poll_start(&s->poll, UV_READABLE, on_poll) != 0) s->polling = 0;
  }
  napi_env env = ctx->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, arg;
  if (napi_get_reference_value(env, ctx->on_readable, &fn) == napi_ok && fn != NULL) {
    napi_get_global(env, &recv);
    napi_create_int32(env, s->id, &arg);
    napi_value ignored;
    // make_callback: runs the microtask/nextTick queues after, as for any I/O callback.
    if (napi_make_callback(env, ctx->async, recv, fn, 1, &arg, &ignored) == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static int parse_address(const char* text, int port, struct sockaddr_storage* out, socklen_t* len) {
  memset(out, 0, sizeof *out);
  struct sockaddr_in* s4 = (struct sockaddr_in*)out;
  struct sockaddr_in6* s6 = (struct sockaddr_in6*)out;
  if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof *s4;
    return 1;
  }
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t n = strlen(text);
  if (n >= sizeof buf) return 0;
  memcpy(buf, text, n + 1);
  char* scope = strchr(buf, '%');
  if (scope != NULL) *scope++ = '\0';
  if (inet_pton(AF_INET6, buf, &s6->sin6_addr) != 1) return 0;
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons((uint16_t)port);
  if (scope != NULL) {
    unsigned idx = if_nametoindex(scope);
    s6->sin6_scope_id = idx != 0 ? idx : (unsigned)strtoul(scope, NULL, 10);
  }
  *len = sizeof *s6;
  return 1;
}

// An IPv4 destination on an IPv6 socket goes out as ::ffff:a.b.c.d (as dgram's udp6 does).
static socklen_t dest_for(int family, const AddrEntry* e, struct sockaddr_storage* out) {
  if (family == AF_INET6 && e->sa.ss_family == AF_INET) {
    const struct sockaddr_in* s4 = (const struct sockaddr_in*)&e->sa;
    struct sockaddr_in6* s6 = (struct sockaddr_in6*)out;
    memset(s6, 0, sizeof *s6);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = s4->sin_port;
    s6->sin6_addr.s6_addr[10] = 0xff;
    s6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s6->sin6_addr.s6_addr[12], &s4->sin_addr, 4);
    return sizeof *s6;
  }
  memcpy(out, &e->sa, e->len);
  return e->len;
}

static void set_buffer(int fd, int optname, int force_optname, int bytes) {
  // SO_*BUFFORCE (CAP_NET_ADMIN) may exceed net.core.[rw]mem_max; otherwise the kernel caps.
  if (setsockopt(fd, SOL_SOCKET, force_optname, &bytes, sizeof bytes) != 0) setsockopt(fd, SOL_SOCKET, optname, &bytes, sizeof bytes);
}

static int get_int_opt(int fd, int level, int optname) {
  int v = 0;
  socklen_t l = sizeof v;
  if (getsockopt(fd, level, optname, &v, &l) != 0) return -1;
  return v;
}

// open(ctx, address, port, flags, receiveBufferBytes, sendBufferBytes)
// flags: 1 reusePort, 2 ipv6Only. Returns { id, address, port, receiveBufferBytes, sendBufferBytes }.
static napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udp-batch: open(ctx, address, port, flags, receiveBufferBytes, sendBufferBytes)");
    return NULL;
  }
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t n = 0;
  if (napi_get_value_string_utf8(env, argv[1], text, sizeof text, &n) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udp-batch: open: address must be an IP literal string");
    return NULL;
  }
  int32_t port = get_i32(env, argv[2], -1);
  int32_t flags = get_i32(env, argv[3], 0);
  int32_t rcv = get_i32(env, argv[4], 0);
  int32_t snd = get_i32(env, argv[5], 0);
  struct sockaddr_storage sa;
  socklen_t len;
  if (port < 0 || port > 65535 || !parse_address(text, port, &sa, &len)) {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "udp-batch: open: not an IP literal and port 0..65535");
    return NULL;
  }
  int fd = socket(sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1, zero = 0;
  if (sa.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, (flags & 2) ? &one : &zero, sizeof one);
  if ((flags & 1) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "setsockopt SO_REUSEPORT", e);
  }
  if (rcv > 0) set_buffer(fd, SO_RCVBUF, SO_RCVBUFFORCE, rcv);
  if (snd > 0) set_buffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, snd);
  if (bind(fd, (struct sockaddr*)&sa, len) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, (struct sockaddr*)&bound, &blen);
  int id = -1;
  for (int i = 0; i < ctx->socks_len; i++) {
    int j = (ctx->free_hint + i) % ctx->socks_len;
    if (ctx->socks[j] == NULL) {
      id = j;
      break;
    }
  }
  if (id < 0) {
    if (ctx->socks_len >= SOCKETS_MAX) {
      close(fd);
      return throw_errno(env, "open", EMFILE);
    }
    int grown = ctx->socks_len * 2;
    Sock** next = realloc(ctx->socks, sizeof(Sock*) * grown);
    if (next == NULL) {
      close(fd);
      return throw_errno(env, "open", ENOMEM);
    }
    memset(next + ctx->socks_len, 0, sizeof(Sock*) * (grown - ctx->socks_len));
    id = ctx->socks_len;
    ctx->socks = next;
    ctx->socks_len = grown;
  }
  Sock* s = calloc(1, sizeof(Sock));
  uv_loop_t* loop = NULL;
  if (s == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init_socket(loop, &s->poll, fd) != 0) {
    free(s);
    close(fd);
    return throw_errno(env, "uv_poll_init", ENOMEM);
  }
  s->poll.data = s;
  s->ctx = ctx;
  s->fd = fd;
  s->id = id;
  s->family = sa.ss_family;
  ctx->socks[id] = s;
  ctx->free_hint = id + 1;
  char host[INET6_ADDRSTRLEN];
  int bport;
  if (bound.ss_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in*)&bound)->sin_addr, host, sizeof host);
    bport = ntohs(((struct sockaddr_in*)&bound)->sin_port);
  } else {
    inet_ntop(AF_INET6, &((struct sockaddr_in6*)&bound)->sin6_addr, host, sizeof host);
    bport = ntohs(((struct sockaddr_in6*)&bound)->sin6_port);
  }
  napi_value result, v;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_set_named_property(env, result, "id", num(env, id)));
  CHECK(napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, result, "address", v));
  CHECK(napi_set_named_property(env, result, "port", num(env, bport)));
  CHECK(napi_set_named_property(env, result, "family", num(env, bound.ss_family == AF_INET ? 4 : 6)));
  // Linux reports twice the size asked (the doubling covers its bookkeeping): halved, so
  // it compares with the request.
  CHECK(napi_set_named_property(env, result, "receiveBufferBytes", num(env, get_int_opt(fd, SOL_SOCKET, SO_RCVBUF) / 2)));
  CHECK(napi_set_named_property(env, result, "sendBufferBytes", num(env, get_int_opt(fd, SOL_SOCKET, SO_SNDBUF) / 2)));
  return result;
}

// start(ctx, id): onReadable(id) is called whenever the socket has datagrams (level-triggered).
static napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  Sock* s = get_sock(env, ctx, argv[1]);
  if (s == NULL) return NULL;
  int r = uv_poll_start(&s->poll, UV_READABLE, on_poll);
  if (r != 0) return throw_errno(env, "uv_poll_start", -r);
  s->polling = 1;
  return NULL;
}

// setRef(ctx, id, ref): whether this socket keeps the event loop alive (as dgram's ref/unref).
static napi_value SetRef(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  Sock* s = get_sock(env, ctx, argv[1]);
  if (s == NULL) return NULL;
  bool ref = true;
  napi_get_value_bool(env, argv[2], &ref);
  if (ref) uv_ref((uv_handle_t*)&s->poll);
  else uv_unref((uv_handle_t*)&s->poll);
  return NULL;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  int32_t id = get_i32(env, argv[1], -1);
  if (id < 0 || id >= ctx->socks_len || ctx->socks[id] == NULL) return NULL;  // idempotent
  Sock* s = ctx->socks[id];
  ctx->socks[id] = NULL;
  if (s->polling) uv_poll_stop(&s->poll);
  close(s->fd);
  s->ctx = NULL;
  uv_close((uv_handle_t*)&s->poll, (uv_close_cb)free);
  return NULL;
}

// recv(ctx, id) -> datagrams received (0 when none waiting); see recvMeta's layout above.
static napi_value Recv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  Sock* s = get_sock(env, ctx, argv[1]);
  if (s == NULL) return NULL;
  int batch = ctx->batch_max;
  for (int i = 0; i < batch; i++) {
    struct msghdr* h = &ctx->rmsgs[i].msg_hdr;
    h->msg_name = &ctx->raddrs[i];
    h->msg_namelen = sizeof(struct sockaddr_storage);
    h->msg_iov = &ctx->riovs[i];
    h->msg_iovlen = 1;
    h->msg_control = NULL;
    h->msg_controllen = 0;
    h->msg_flags = 0;
  }
  int32_t* meta = ctx->recv_meta;
  int new_base = 4 * batch;
  meta[new_base] = 0;
  int got = recvmmsg(s->fd, ctx->rmsgs, (unsigned)batch, MSG_DONTWAIT, NULL);
  if (got < 0) {
    // EAGAIN: a spurious wakeup; ECONNREFUSED & co: an ICMP error queued on the socket.
    if (errno != EAGAIN && errno != EWOULDBLOCK) ctx->recv_errors++;
    got = 0;
  }
  int out = 0;
  for (int i = 0; i < got; i++) {
    struct msghdr* h = &ctx->rmsgs[i].msg_hdr;
    if (h->msg_flags & MSG_TRUNC) {
      ctx->truncated++;
      continue;
    }
    struct sockaddr_storage* sa = &ctx->raddrs[i];
    int port;
    if (sa->ss_family == AF_INET) port = ntohs(((struct sockaddr_in*)sa)->sin_port);
    else if (sa->ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6*)sa)->sin6_port);
    else continue;
    int fresh = 0;
    int32_t id = addr_intern(ctx, sa, h->msg_namelen, &fresh);
    if (id < 0) continue;
    if (fresh) meta[new_base + 1 + meta[new_base]++] = id;
    meta[4 * out] = (int32_t)(i * ctx->slot_bytes);
    meta[4 * out + 1] = (int32_t)ctx->rmsgs[i].msg_len;
    meta[4 * out + 2] = id;
    meta[4 * out + 3] = port;
    out++;
  }
  napi_value r;
  napi_create_int32(env, out, &r);
  return r;
}

// addressText(ctx, id) -> the IP literal of an address id (as dgram's rinfo.address), or undefined.
static napi_value AddressText(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  int32_t id = get_i32(env, argv[1], -1);
  if (id < 0 || (uint32_t)id >= ctx->capacity || !ctx->entries[id].used) return NULL;
  AddrEntry* e = &ctx->entries[id];
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (e->sa.ss_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in*)&e->sa)->sin_addr, host, sizeof host);
  } else {
    struct sockaddr_in6* s6 = (struct sockaddr_in6*)&e->sa;
    inet_ntop(AF_INET6, &s6->sin6_addr, host, INET6_ADDRSTRLEN);
    if (s6->sin6_scope_id != 0) {
      char ifname[IF_NAMESIZE];
      size_t l = strlen(host);
      if (if_indextoname(s6->sin6_scope_id, ifname) != NULL) snprintf(host + l, sizeof host - l, "%%%s", ifname);
      else snprintf(host + l, sizeof host - l, "%%%u", s6->sin6_scope_id);
    }
  }
  napi_value v;
  CHECK(napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &v));
  return v;
}

// addressId(ctx, text, port) -> id (>= 0); -1: not an IP literal; -2: table full this epoch.
static napi_value AddressId(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t n = 0;
  int32_t result = -1;
  int32_t port = get_i32(env, argv[2], -1);
  struct sockaddr_storage sa;
  socklen_t len;
  if (napi_get_value_string_utf8(env, argv[1], text, sizeof text, &n) == napi_ok && n < sizeof text - 1 && port >= 0 && port <= 65535 && parse_address(text, port, &sa, &len)) {
    int fresh;
    result = addr_intern(ctx, &sa, len, &fresh);
    if (result < 0) result = -2;
  }
  napi_value r;
  napi_create_int32(env, result, &r);
  return r;
}

// connect(ctx, id, addressId) -> 0 or -errno. addressId -1 disconnects (AF_UNSPEC).
static napi_value Connect(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  Sock* s = get_sock(env, ctx, argv[1]);
  if (s == NULL) return NULL;
  int32_t aid = get_i32(env, argv[2], -1);
  int r;
  if (aid < 0) {
    struct sockaddr unspec;
    memset(&unspec, 0, sizeof unspec);
    unspec.sa_family = AF_UNSPEC;
    r = connect(s->fd, &unspec, sizeof unspec);
  } else if ((uint32_t)aid >= ctx->capacity || !ctx->entries[aid].used) {
    r = -1;
    errno = EINVAL;
  } else {
    struct sockaddr_storage dest;
    socklen_t dlen = dest_for(s->family, &ctx->entries[aid], &dest);
    r = connect(s->fd, (struct sockaddr*)&dest, dlen);
  }
  napi_value v;
  napi_create_int32(env, r == 0 ? 0 : -errno, &v);
  return v;
}

// Sends msgs[0..n) on s (one sendmmsg, more when the kernel takes part); segs[k] is the
// number of datagrams msgs[k] carries (> 1: a GSO message). Counts what is refused:
// a full send buffer drops the rest (each would fail the same way, a system call each),
// as the kernel drops on overflow; any other refusal (an unreachable peer, a family
// mismatch) drops that message and goes on, as dgram would. A GSO message the kernel
// refuses is sent again as its datagrams one by one, so a refusal costs what it would
// without GSO; when the refusal is GSO's own (no checksum offload, a route through
// IPsec, a segment over the path MTU), the socket stops using GSO.
static void send_messages(Ctx* ctx, Sock* s, struct mmsghdr* msgs, const int* segs, int n) {
  int done = 0;
  while (done < n) {
    int r = sendmmsg(s->fd, msgs + done, (unsigned)(n - done), MSG_DONTWAIT);
    if (r > 0) {
      done += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      for (int k = done; k < n; k++) ctx->send_errors += segs == NULL ? 1 : segs[k];
      break;
    }
    int e = errno;
    if (segs != NULL && segs[done] > 1) {
      if (e == EIO || e == EINVAL || e == EMSGSIZE || e == EOPNOTSUPP || e == ENOPROTOOPT) s->gso_off = 1;
      struct msghdr* g = &msgs[done].msg_hdr;
      struct mmsghdr single[GSO_SEGMENTS_MAX];
      int m = (int)g->msg_iovlen;
      for (int k = 0; k < m; k++) {
        memset(&single[k], 0, sizeof single[k]);
        single[k].msg_hdr.msg_name = g->msg_name;
        single[k].msg_hdr.msg_namelen = g->msg_namelen;
        single[k].msg_hdr.msg_iov = &g->msg_iov[k];
        single[k].msg_hdr.msg_iovlen = 1;
      }
      ctx->gso_messages--;
      ctx->gso_datagrams -= m;
      send_messages(ctx, s, single, NULL, m);
    } else {
      ctx->send_errors++;
    }
    done++;
  }
}

// send(ctx, count) -> messages attempted. Messages are grouped per socket, one sendmmsg
// per socket (order kept within a socket); a run of them to one destination, of one
// length (the last may be shorter), becomes one GSO message. Ends the address table's epoch.
static napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  int32_t count = get_i32(env, argv[1], 0);
  if (count < 0 || count > SEND_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "udp-batch: send: count 0..sendMessagesMax");
    return NULL;
  }
  int32_t* meta = ctx->send_meta;
  memset(ctx->sent_mark, 0, (size_t)count);
  int sent_total = 0;
  for (int first = 0; first < count; first++) {
    if (ctx->sent_mark[first]) continue;
    int32_t sid = meta[4 * first];
    Sock* s = (sid >= 0 && sid < ctx->socks_len) ? ctx->socks[sid] : NULL;
    int n = 0;  // messages (smsgs)
    int v = 0;  // datagrams (siovs)
    // The open GSO run of smsgs[n - 1]: its destination, segment size, bytes, and
    // whether it still takes segments (a shorter one ends it).
    int32_t run_aid = 0;
    size_t run_size = 0, run_bytes = 0;
    int run_open = 0;
    for (int i = first; i < count; i++) {
      if (ctx->sent_mark[i] || meta[4 * i] != sid) continue;
      ctx->sent_mark[i] = 1;
      if (s == NULL) {
        ctx->send_errors++;
        continue;
      }
      int32_t off = meta[4 * i + 1], len = meta[4 * i + 2], aid = meta[4 * i + 3];
      if (off < 0 || len < 0 || (size_t)off + (size_t)len > ctx->send_arena_bytes || (aid >= 0 && ((uint32_t)aid >= ctx->capacity || !ctx->entries[aid].used))) {
        ctx->send_errors++;
        continue;
      }
      ctx->siovs[v].iov_base = ctx->send_arena + off;
      ctx->siovs[v].iov_len = (size_t)len;
      v++;
      if (run_open && aid == run_aid && len > 0 && (size_t)len <= run_size && ctx->segs[n - 1] < GSO_SEGMENTS_MAX && run_bytes + (size_t)len <= GSO_BYTES_MAX) {
        ctx->smsgs[n - 1].msg_hdr.msg_iovlen++;
        ctx->segs[n - 1]++;
        run_bytes += (size_t)len;
        if ((size_t)len < run_size) run_open = 0;
        continue;
      }
      struct msghdr* h = &ctx->smsgs[n].msg_hdr;
      memset(h, 0, sizeof *h);
      h->msg_iov = &ctx->siovs[v - 1];
      h->msg_iovlen = 1;
      if (aid >= 0) {
        h->msg_name = &ctx->saddrs[n];
        h->msg_namelen = dest_for(s->family, &ctx->entries[aid], &ctx->saddrs[n]);
      }
      ctx->segs[n] = 1;
      n++;
      run_open = !s->gso_off && len > 0 && 2 * (size_t)len <= GSO_BYTES_MAX;
      run_aid = aid;
      run_size = (size_t)len;
      run_bytes = (size_t)len;
    }
    for (int k = 0; k < n; k++) {
      if (ctx->segs[k] < 2) continue;
      struct msghdr* h = &ctx->smsgs[k].msg_hdr;
      h->msg_control = ctx->sctrl[k];
      h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      struct cmsghdr* cm = CMSG_FIRSTHDR(h);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t size = (uint16_t)h->msg_iov[0].iov_len;
      memcpy(CMSG_DATA(cm), &size, sizeof size);
      ctx->gso_messages++;
      ctx->gso_datagrams += ctx->segs[k];
    }
    if (n > 0) send_messages(ctx, s, ctx->smsgs, ctx->segs, n);
    sent_total += v;
  }
  ctx->epoch++;
  if (ctx->epoch == 0) ctx->epoch = 1;
  napi_value r;
  napi_create_int32(env, sent_total, &r);
  return r;
}

// attachReuseportCbpf(ctx, id, instructions: {code, jt, jf, k}[])
static napi_value AttachReuseportCbpf(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  Sock* s = get_sock(env, ctx, argv[1]);
  if (s == NULL) return NULL;
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[2], &n) != napi_ok || n == 0 || n > BPF_MAXINSNS) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udp-batch: attachReuseportCbpf: instructions must be an array of 1..4096 {code, jt, jf, k}");
    return NULL;
  }
  struct sock_filter* prog = calloc(n, sizeof(struct sock_filter));
  if (prog == NULL) return throw_errno(env, "attachReuseportCbpf", ENOMEM);
  for (uint32_t i = 0; i < n; i++) {
    napi_value ins, v;
    uint32_t code = 0, jt = 0, jf = 0, k = 0;
    int ok = napi_get_element(env, argv[2], i, &ins) == napi_ok;
    ok = ok && napi_get_named_property(env, ins, "code", &v) == napi_ok && napi_get_value_uint32(env, v, &code) == napi_ok;
    ok = ok && napi_get_named_property(env, ins, "jt", &v) == napi_ok && napi_get_value_uint32(env, v, &jt) == napi_ok;
    ok = ok && napi_get_named_property(env, ins, "jf", &v) == napi_ok && napi_get_value_uint32(env, v, &jf) == napi_ok;
    ok = ok && napi_get_named_property(env, ins, "k", &v) == napi_ok && napi_get_value_uint32(env, v, &k) == napi_ok;
    if (!ok || code > 0xffff || jt > 0xff || jf > 0xff) {
      free(prog);
      napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "udp-batch: attachReuseportCbpf: each instruction needs code (u16), jt, jf (u8) and k (u32)");
      return NULL;
    }
    prog[i].code = (uint16_t)code;
    prog[i].jt = (uint8_t)jt;
    prog[i].jf = (uint8_t)jf;
    prog[i].k = k;
  }
  struct sock_fprog fprog = { .len = (unsigned short)n, .filter = prog };
  int r = setsockopt(s->fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof fprog);
  int e = errno;
  free(prog);
  if (r != 0) return throw_errno(env, "setsockopt SO_ATTACH_REUSEPORT_CBPF", e);
  return NULL;
}

// fd(ctx, id) -> the socket's descriptor (for diagnostics; the addon owns it).
static napi_value Fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  Sock* s = get_sock(env, ctx, argv[1]);
  if (s == NULL) return NULL;
  return num(env, s->fd);
}

static napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Ctx* ctx = get_ctx(env, argv[0]);
  if (ctx == NULL) return NULL;
  napi_value o;
  CHECK(napi_create_object(env, &o));
  napi_set_named_property(env, o, "truncated", num(env, ctx->truncated));
  napi_set_named_property(env, o, "receiveErrors", num(env, ctx->recv_errors));
  napi_set_named_property(env, o, "sendErrors", num(env, ctx->send_errors));
  napi_set_named_property(env, o, "addressEvictions", num(env, ctx->evictions));
  napi_set_named_property(env, o, "addressTableFull", num(env, ctx->table_full));
  napi_set_named_property(env, o, "addresses", num(env, ctx->count));
  napi_set_named_property(env, o, "gsoMessages", num(env, ctx->gso_messages));
  napi_set_named_property(env, o, "gsoDatagrams", num(env, ctx->gso_datagrams));
  return o;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"createContext", NULL, CreateContext, NULL, NULL, NULL, napi_default, NULL},
    {"open", NULL, Open, NULL, NULL, NULL, napi_default, NULL},
    {"start", NULL, Start, NULL, NULL, NULL, napi_default, NULL},
    {"setRef", NULL, SetRef, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
    {"recv", NULL, Recv, NULL, NULL, NULL, napi_default, NULL},
    {"addressText", NULL, AddressText, NULL, NULL, NULL, napi_default, NULL},
    {"addressId", NULL, AddressId, NULL, NULL, NULL, napi_default, NULL},
    {"connect", NULL, Connect, NULL, NULL, NULL, napi_default, NULL},
    {"send", NULL, Send, NULL, NULL, NULL, napi_default, NULL},
    {"attachReuseportCbpf", NULL, AttachReuseportCbpf, NULL, NULL, NULL, napi_default, NULL},
    {"fd", NULL, Fd, NULL, NULL, NULL, napi_default, NULL},
    {"stats", NULL, Stats, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
