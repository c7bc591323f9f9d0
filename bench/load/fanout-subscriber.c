/*
 * A subscriber fleet in C for the stream suite's fan-out cases: N
 * connections to one loopback port, read by one thread with epoll, so that
 * the bench measures the server rather than a Node client sharing the
 * machine's two CPUs. The same program follows a Commy variable (a Watch
 * stream over a minimal HTTP/2 client, one connection each), the fan-out
 * floor of Commy's server stack (a Listen stream of the bench
 * EchoService, which Broadcast feeds) or a Redis channel (SUBSCRIBE, one
 * connection each), so that Commy, its floor and its peer are held against
 * each other with like clients.
 *
 *   COMMY_BENCH_TOKEN=<token> \
 *     fanout-subscriber commy <port> <connections> <authority> <request-hex>
 *   COMMY_BENCH_TOKEN=<token> fanout-subscriber listen <port> <connections> <authority>
 *   fanout-subscriber redis <port> <connections> <channel>
 *
 * The bearer token comes in the environment, which unlike the command line
 * only its owner can read (/proc/<pid>/environ).
 * <request-hex> is what each Watch stream sends after its headers: gRPC
 * frames of WatchRequest (subscriptions, then a ping), encoded by the
 * bench, so that no protobuf encoder is needed here. A connection is ready
 * once the pong arrives (the server answers commands in order, each
 * subscription's reply before it), for Listen once its first (empty)
 * message arrives, for Redis once the SUBSCRIBE confirmation does. Then
 * the program prints "opened" and reads commands on stdin, one a line,
 * answering on stdout (stream-subscriber.ts's protocol):
 *
 *   arm <count>          → armed     (count 0: a throughput run, ended by END_SEQ)
 *   collect <timeoutMs>  → {"type":"collected",...} as one JSON line
 *   close                → closed, and the program exits
 *
 * Every value carries the writer's CLOCK_MONOTONIC stamp (ns, int64 LE at
 * offset 0) and sequence number (uint32 LE at offset 8), as
 * bench/suites/stream-value.ts writes them. A failure prints "error <why>"
 * and exits 1. The program exits when stdin closes (the bench is gone) and
 * after MAX_LIFETIME_S in any case. Linux only; built by
 * bench/load/fanout-subscribers.ts with `cc -O2`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 4096
#define MAX_LIFETIME_S 3600
#define OPEN_TIMEOUT_MS 60000
/* After a run's last write: no event for this long means the run is over. */
#define QUIET_MS 50
#define QUIET_LIMIT_MS 5000
#define END_SEQ 0xffffffffu
/* Room for one whole HTTP/2 frame of the default maximum size (16,384) and more. */
#define IN_CAPACITY (256 * 1024)
/* A gRPC message larger than this is not one of the bench's. */
#define MAX_MESSAGE_BYTES (16 * 1024 * 1024)
/* Reads of one connection per wake-up: a busy connection cannot starve the others. */
#define READS_PER_WAKE 16

enum { H2_DATA = 0, H2_HEADERS = 1, H2_RST_STREAM = 3, H2_SETTINGS = 4 };
enum { H2_PUSH_PROMISE = 5, H2_PING = 6, H2_GOAWAY = 7, H2_CONTINUATION = 9 };
enum { FLAG_END_STREAM = 0x1, FLAG_ACK = 0x1, FLAG_END_HEADERS = 0x4, FLAG_PADDED = 0x8 };
#define H2_WINDOW_MAX 0x7fffffffu
#define H2_DEFAULT_WINDOW 65535u
/* Replenish the receive windows once this much has arrived (never in a bench run). */
#define H2_REPLENISH (1u << 30)
#define STREAM_ID 1u
#define CHANGE_KIND_UPDATE 2

/* What one connection saw during one run (as stream-subscriber.ts's Tally). */
struct tally {
  int64_t *latencies; /* ns per write 1..count, INT64_MIN until seen */
  uint32_t count;
  uint32_t seen;
  uint64_t events;
  uint64_t covered;
  uint64_t skipped;
  int64_t last_ns;
  int done;
  int armed;
};

struct conn {
  int fd;
  int ready;
  int failures; /* subscriptions the server refused */
  char broken[200];
  unsigned char in[IN_CAPACITY];
  size_t in_len;
  /* gRPC bytes of the Watch stream not yet a whole message (Commy). */
  unsigned char *grpc;
  size_t grpc_len;
  size_t grpc_capacity;
  uint64_t unacknowledged; /* DATA bytes received since the last WINDOW_UPDATE */
  struct tally tally;
};

/* What the connections follow: a Watch stream, a Listen stream (HTTP/2 both) or a Redis channel. */
static enum { FOLLOW_WATCH, FOLLOW_LISTEN, FOLLOW_REDIS } follow;
static struct conn *conns;
static int conn_count;
static int epoll_fd;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t now_ms(void) { return now_ns() / 1000000; }

static void fail(const char *format, ...) {
  va_list args;
  va_start(args, format);
  printf("error ");
  vprintf(format, args);
  printf("\n");
  va_end(args);
  fflush(stdout);
  exit(1);
}

/* Marks a connection as broken (the first reason stays) and stops reading it. */
static void break_conn(struct conn *c, const char *why) {
  if (c->broken[0] == '\0') snprintf(c->broken, sizeof c->broken, "%s", why);
  if (c->fd >= 0) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
}

/* Sockets stay blocking: what we send is small, so send() returns at once. */
static void send_all(struct conn *c, const void *bytes, size_t length) {
  const unsigned char *p = bytes;
  for (size_t sent = 0; sent < length && c->fd >= 0;) {
    ssize_t n = send(c->fd, p + sent, length - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      break_conn(c, "send failed");
      return;
    }
    sent += (size_t)n;
  }
}

static int connect_loopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket: %s", strerror(errno));
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    fail("connect to 127.0.0.1:%d: %s", port, strerror(errno));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* ---- the tally ---- */

static void tally_arm(struct tally *t, uint32_t count) {
  free(t->latencies);
  t->latencies = NULL;
  if (count > 0) {
    t->latencies = malloc(sizeof(int64_t) * count);
    if (t->latencies == NULL) fail("out of memory");
    for (uint32_t i = 0; i < count; i++) t->latencies[i] = INT64_MIN;
  }
  t->count = count;
  t->seen = 0;
  t->events = 0;
  t->covered = 0;
  t->skipped = 0;
  t->last_ns = 0;
  t->done = 0;
  t->armed = 1;
}

static uint32_t read_u32le(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One value received: the stamp and sequence number as stream-value.ts readStamp reads them. */
static void tally_record(struct tally *t, const unsigned char *value, size_t length,
                         uint64_t skipped, int64_t now) {
  if (!t->armed || length < 12) return;
  uint32_t seq = read_u32le(value + 8);
  if (seq == 0) return;
  int64_t stamp = (int64_t)((uint64_t)read_u32le(value) | (uint64_t)read_u32le(value + 4) << 32);
  t->events++;
  t->covered += 1 + skipped;
  t->skipped += skipped;
  t->last_ns = now;
  if (seq == END_SEQ || (t->count > 0 && seq == t->count)) t->done = 1;
  if (seq <= t->count && t->latencies[seq - 1] == INT64_MIN) {
    t->latencies[seq - 1] = now - stamp;
    t->seen++;
  }
}

/* ---- protobuf, as little as WatchResponse needs ---- */

/* Reads a varint at *p (< end); returns 0 when it runs past end. */
static int read_varint(const unsigned char **p, const unsigned char *end, uint64_t *value) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    unsigned char byte = *(*p)++;
    result |= (uint64_t)(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return 1;
    }
  }
  return 0;
}

/* One field: its number, wire type and (for length-delimited ones) the bytes. */
struct field {
  uint32_t number;
  uint32_t wire;
  uint64_t varint;
  const unsigned char *bytes;
  size_t length;
};

/* Reads the next field at *p; returns 0 at the end or on malformed input. */
static int next_field(const unsigned char **p, const unsigned char *end, struct field *f) {
  uint64_t tag;
  if (*p >= end || !read_varint(p, end, &tag)) return 0;
  f->number = (uint32_t)(tag >> 3);
  f->wire = (uint32_t)(tag & 7);
  switch (f->wire) {
    case 0:
      return read_varint(p, end, &f->varint);
    case 1:
      if (end - *p < 8) return 0;
      *p += 8;
      return 1;
    case 2: {
      uint64_t length;
      if (!read_varint(p, end, &length) || length > (uint64_t)(end - *p)) return 0;
      f->bytes = *p;
      f->length = (size_t)length;
      *p += length;
      return 1;
    }
    case 5:
      if (end - *p < 4) return 0;
      *p += 4;
      return 1;
    default:
      return 0;
  }
}

/* Change: data = 3, skipped = 5, kind = 6. */
static void on_change(struct conn *c, const unsigned char *p, const unsigned char *end,
                      int64_t now) {
  const unsigned char *data = NULL;
  size_t data_length = 0;
  uint64_t skipped = 0, kind = 0;
  struct field f;
  while (next_field(&p, end, &f)) {
    if (f.number == 3 && f.wire == 2) {
      data = f.bytes;
      data_length = f.length;
    } else if (f.number == 5 && f.wire == 0) {
      skipped = f.varint;
    } else if (f.number == 6 && f.wire == 0) {
      kind = f.varint;
    }
  }
  if (kind == CHANGE_KIND_UPDATE && data != NULL) {
    tally_record(&c->tally, data, data_length, skipped, now);
  }
}

/* WatchResponse: reply = 1 (its error = 2), changes = 2 (Change = 1, repeated), pong = 3,
 * ended = 5. */
static void on_watch_response(struct conn *c, const unsigned char *p, size_t length) {
  const unsigned char *end = p + length;
  struct field f;
  while (next_field(&p, end, &f)) {
    if (f.wire != 2) continue;
    if (f.number == 2) {
      int64_t now = now_ns();
      const unsigned char *q = f.bytes, *batch_end = f.bytes + f.length;
      struct field change;
      while (next_field(&q, batch_end, &change)) {
        if (change.number == 1 && change.wire == 2) {
          on_change(c, change.bytes, change.bytes + change.length, now);
        }
      }
    } else if (f.number == 1) {
      const unsigned char *q = f.bytes, *reply_end = f.bytes + f.length;
      struct field part;
      while (next_field(&q, reply_end, &part)) {
        if (part.number == 2) c->failures++;
      }
    } else if (f.number == 3) {
      c->ready = 1;
    } else if (f.number == 5) {
      break_conn(c, "a subscription ended");
    }
  }
}

/* ListenResponse: payload = 1; the first message, empty, says the stream listens. */
static void on_listen_response(struct conn *c, const unsigned char *p, size_t length) {
  const unsigned char *end = p + length;
  struct field f;
  int64_t now = now_ns();
  while (next_field(&p, end, &f)) {
    if (f.number == 1 && f.wire == 2 && f.length > 0) {
      tally_record(&c->tally, f.bytes, f.length, 0, now);
      return;
    }
  }
  c->ready = 1;
}

/* ---- HTTP/2 ---- */

static void put_frame_header(unsigned char *p, uint32_t length, int type, int flags,
                             uint32_t stream) {
  p[0] = (unsigned char)(length >> 16);
  p[1] = (unsigned char)(length >> 8);
  p[2] = (unsigned char)length;
  p[3] = (unsigned char)type;
  p[4] = (unsigned char)flags;
  p[5] = (unsigned char)(stream >> 24 & 0x7f);
  p[6] = (unsigned char)(stream >> 16);
  p[7] = (unsigned char)(stream >> 8);
  p[8] = (unsigned char)stream;
}

static void send_window_update(struct conn *c, uint32_t stream, uint32_t increment) {
  unsigned char frame[13];
  put_frame_header(frame, 4, 8, 0, stream);
  frame[9] = (unsigned char)(increment >> 24 & 0x7f);
  frame[10] = (unsigned char)(increment >> 16);
  frame[11] = (unsigned char)(increment >> 8);
  frame[12] = (unsigned char)increment;
  send_all(c, frame, sizeof frame);
}

/* An HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
static size_t put_hpack_int(unsigned char *p, unsigned char first, int bits, size_t value) {
  size_t limit = ((size_t)1 << bits) - 1, n = 0;
  if (value < limit) {
    p[n++] = (unsigned char)(first | value);
    return n;
  }
  p[n++] = (unsigned char)(first | limit);
  value -= limit;
  while (value >= 128) {
    p[n++] = (unsigned char)(value % 128 + 128);
    value /= 128;
  }
  p[n++] = (unsigned char)value;
  return n;
}

/* A literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2). */
static size_t put_header(unsigned char *p, const char *name, const char *value) {
  size_t n = 0, name_length = strlen(name), value_length = strlen(value);
  p[n++] = 0x00;
  n += put_hpack_int(p + n, 0, 7, name_length);
  memcpy(p + n, name, name_length);
  n += name_length;
  n += put_hpack_int(p + n, 0, 7, value_length);
  memcpy(p + n, value, value_length);
  return n + value_length;
}

/* The preface, SETTINGS, a wide-open window, the request's HEADERS and its first DATA
 * (the last when `end_stream`). */
static void open_stream(struct conn *c, const char *authority, const char *token,
                        const char *path, const unsigned char *request, size_t request_length,
                        int end_stream) {
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  send_all(c, preface, sizeof preface - 1);
  /* ENABLE_PUSH = 0, INITIAL_WINDOW_SIZE = 2^31 - 1: the server never waits for us. */
  unsigned char settings[9 + 12];
  put_frame_header(settings, 12, H2_SETTINGS, 0, 0);
  const uint16_t ids[2] = {0x2, 0x4};
  const uint32_t values[2] = {0, H2_WINDOW_MAX};
  for (int i = 0; i < 2; i++) {
    unsigned char *s = settings + 9 + 6 * i;
    s[0] = (unsigned char)(ids[i] >> 8);
    s[1] = (unsigned char)ids[i];
    s[2] = (unsigned char)(values[i] >> 24);
    s[3] = (unsigned char)(values[i] >> 16);
    s[4] = (unsigned char)(values[i] >> 8);
    s[5] = (unsigned char)values[i];
  }
  send_all(c, settings, sizeof settings);
  send_window_update(c, 0, H2_WINDOW_MAX - H2_DEFAULT_WINDOW);

  char bearer[600];
  snprintf(bearer, sizeof bearer, "Bearer %s", token);
  unsigned char headers[9 + 1024];
  size_t n = 9;
  n += put_header(headers + n, ":method", "POST");
  n += put_header(headers + n, ":scheme", "http");
  n += put_header(headers + n, ":path", path);
  n += put_header(headers + n, ":authority", authority);
  n += put_header(headers + n, "content-type", "application/grpc+proto");
  n += put_header(headers + n, "te", "trailers");
  n += put_header(headers + n, "authorization", bearer);
  put_frame_header(headers, (uint32_t)(n - 9), H2_HEADERS, FLAG_END_HEADERS, STREAM_ID);
  send_all(c, headers, n);

  unsigned char data_header[9];
  put_frame_header(data_header, (uint32_t)request_length, H2_DATA,
                   end_stream ? FLAG_END_STREAM : 0, STREAM_ID);
  send_all(c, data_header, sizeof data_header);
  send_all(c, request, request_length);
}

/* Appends a DATA frame's payload to the gRPC bytes and hands on every whole message. */
static void on_grpc_bytes(struct conn *c, const unsigned char *p, size_t length) {
  if (c->grpc_len + length > c->grpc_capacity) {
    size_t capacity = c->grpc_capacity == 0 ? 65536 : c->grpc_capacity;
    while (capacity < c->grpc_len + length && capacity <= MAX_MESSAGE_BYTES) capacity *= 2;
    if (capacity > 2 * MAX_MESSAGE_BYTES) {
      break_conn(c, "a gRPC message larger than the bench ever sends");
      return;
    }
    unsigned char *grown = realloc(c->grpc, capacity);
    if (grown == NULL) fail("out of memory");
    c->grpc = grown;
    c->grpc_capacity = capacity;
  }
  memcpy(c->grpc + c->grpc_len, p, length);
  c->grpc_len += length;
  size_t at = 0;
  while (c->grpc_len - at >= 5 && c->fd >= 0) {
    const unsigned char *m = c->grpc + at;
    uint32_t size = (uint32_t)m[1] << 24 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 8 | m[4];
    if (m[0] != 0) {
      break_conn(c, "a compressed message, which this client never asked for");
      return;
    }
    if (size > MAX_MESSAGE_BYTES) {
      break_conn(c, "a gRPC message larger than the bench ever sends");
      return;
    }
    if (c->grpc_len - at < 5 + (size_t)size) break;
    if (follow == FOLLOW_LISTEN) {
      on_listen_response(c, m + 5, size);
    } else {
      on_watch_response(c, m + 5, size);
    }
    at += 5 + (size_t)size;
  }
  memmove(c->grpc, c->grpc + at, c->grpc_len - at);
  c->grpc_len -= at;
}

/* One whole frame from the server. Header blocks are not decoded: only their flags matter. */
static void on_frame(struct conn *c, int type, int flags, uint32_t stream, const unsigned char *p,
                     size_t length) {
  switch (type) {
    case H2_DATA: {
      c->unacknowledged += length;
      if (c->unacknowledged >= H2_REPLENISH) {
        send_window_update(c, 0, (uint32_t)c->unacknowledged);
        send_window_update(c, STREAM_ID, (uint32_t)c->unacknowledged);
        c->unacknowledged = 0;
      }
      size_t padding = 0;
      if (flags & FLAG_PADDED) {
        if (length < 1 || (size_t)p[0] + 1 > length) {
          break_conn(c, "a malformed padded DATA frame");
          return;
        }
        padding = p[0];
        p++;
        length--;
      }
      if (stream == STREAM_ID) on_grpc_bytes(c, p, length - padding);
      if (c->fd >= 0 && (flags & FLAG_END_STREAM)) break_conn(c, "the server ended the stream");
      return;
    }
    case H2_HEADERS:
    case H2_CONTINUATION:
      /* Response headers carry no END_STREAM; trailers (the call's end) do. */
      if (flags & FLAG_END_STREAM) break_conn(c, "the server ended the stream (trailers)");
      return;
    case H2_RST_STREAM:
      break_conn(c, "RST_STREAM from the server");
      return;
    case H2_SETTINGS:
      if (!(flags & FLAG_ACK)) {
        unsigned char ack[9];
        put_frame_header(ack, 0, H2_SETTINGS, FLAG_ACK, 0);
        send_all(c, ack, sizeof ack);
      }
      return;
    case H2_PING:
      if (!(flags & FLAG_ACK) && length == 8) {
        unsigned char pong[17];
        put_frame_header(pong, 8, H2_PING, FLAG_ACK, 0);
        memcpy(pong + 9, p, 8);
        send_all(c, pong, sizeof pong);
      }
      return;
    case H2_GOAWAY:
      break_conn(c, "GOAWAY from the server");
      return;
    case H2_PUSH_PROMISE:
      break_conn(c, "PUSH_PROMISE, which SETTINGS_ENABLE_PUSH = 0 forbids");
      return;
    default:
      return; /* WINDOW_UPDATE, PRIORITY, unknown: nothing to do */
  }
}

/* Splits the bytes read into frames; returns how many were consumed. */
static size_t on_h2_bytes(struct conn *c, const unsigned char *p, size_t length) {
  size_t at = 0;
  while (length - at >= 9 && c->fd >= 0) {
    const unsigned char *h = p + at;
    size_t size = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    if (size + 9 > IN_CAPACITY) {
      break_conn(c, "a frame larger than SETTINGS_MAX_FRAME_SIZE");
      return at;
    }
    if (length - at < 9 + size) break;
    uint32_t stream = ((uint32_t)h[5] & 0x7f) << 24 | (uint32_t)h[6] << 16 |
                      (uint32_t)h[7] << 8 | h[8];
    on_frame(c, h[3], h[4], stream, h + 9, size);
    at += 9 + size;
  }
  return at;
}

/* ---- RESP ---- */

/* A line up to CRLF at p; returns its length, or -1 when it is not all there yet. */
static long resp_line(const unsigned char *p, const unsigned char *end) {
  for (const unsigned char *q = p; q + 1 < end; q++) {
    if (q[0] == '\r' && q[1] == '\n') return q - p;
  }
  return -1;
}

/* One element of a push: a bulk string, an integer or a simple string. */
struct resp_item {
  const unsigned char *bytes;
  long length;
};

/* Parses one element at *p; returns 1, 0 when incomplete, -1 when malformed or an error. */
static int resp_element(const unsigned char **p, const unsigned char *end,
                        struct resp_item *item) {
  long line = resp_line(*p, end);
  if (line < 0) return 0;
  const unsigned char *q = *p;
  if (q[0] == ':' || q[0] == '+') {
    item->bytes = q + 1;
    item->length = line - 1;
    *p = q + line + 2;
    return 1;
  }
  if (q[0] != '$') return -1;
  long size = strtol((const char *)q + 1, NULL, 10);
  if (size < 0 || size > MAX_MESSAGE_BYTES) return -1;
  if (end - (q + line + 2) < size + 2) return 0;
  item->bytes = q + line + 2;
  item->length = size;
  *p = q + line + 2 + size + 2;
  return 1;
}

/* Consumes every whole push ["message", channel, payload] or ["subscribe", channel, n]. */
static size_t on_resp_bytes(struct conn *c, const unsigned char *p, size_t length) {
  const unsigned char *at = p, *end = p + length;
  int64_t now = now_ns();
  while (at < end && c->fd >= 0) {
    long line = resp_line(at, end);
    if (line < 0) break;
    if (at[0] != '*' || strtol((const char *)at + 1, NULL, 10) != 3) {
      break_conn(c, at[0] == '-' ? "an error reply from Redis" : "an unexpected reply");
      break;
    }
    const unsigned char *q = at + line + 2;
    struct resp_item items[3];
    int complete = 1;
    for (int i = 0; i < 3 && complete == 1; i++) complete = resp_element(&q, end, &items[i]);
    if (complete == 0) break;
    if (complete < 0) {
      break_conn(c, "a malformed push");
      break;
    }
    if (items[0].length == 7 && memcmp(items[0].bytes, "message", 7) == 0) {
      tally_record(&c->tally, items[2].bytes, (size_t)items[2].length, 0, now);
    } else if (items[0].length == 9 && memcmp(items[0].bytes, "subscribe", 9) == 0) {
      c->ready = 1;
    }
    at = q;
  }
  return (size_t)(at - p);
}

/* ---- the event loop ---- */

static void read_conn(struct conn *c) {
  for (int reads = 0; reads < READS_PER_WAKE && c->fd >= 0; reads++) {
    ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAPACITY - c->in_len, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      break_conn(c, n == 0 ? "the server closed the connection" : "recv failed");
      return;
    }
    size_t room = IN_CAPACITY - c->in_len;
    c->in_len += (size_t)n;
    size_t used =
        follow != FOLLOW_REDIS ? on_h2_bytes(c, c->in, c->in_len)
                               : on_resp_bytes(c, c->in, c->in_len);
    if (c->fd < 0) return;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (c->in_len == IN_CAPACITY) {
      break_conn(c, "a message larger than the read buffer");
      return;
    }
    /* A short read drained the socket: another recv would only say EAGAIN, and epoll is
     * level-triggered. */
    if ((size_t)n < room) return;
  }
}

/* Waits up to timeout_ms for sockets (and stdin, when watched) and reads what is there. */
static int poll_once(int timeout_ms) {
  struct epoll_event events[64];
  int n = epoll_wait(epoll_fd, events, 64, timeout_ms);
  int stdin_ready = 0;
  for (int i = 0; i < n; i++) {
    if (events[i].data.u32 == UINT32_MAX) {
      stdin_ready = 1;
    } else {
      read_conn(&conns[events[i].data.u32]);
    }
  }
  return stdin_ready;
}

static void wait_until_open(int64_t deadline_ms) {
  int64_t now = now_ms();
  for (; now < deadline_ms; now = now_ms()) {
    int ready = 0;
    for (int i = 0; i < conn_count; i++) {
      struct conn *c = &conns[i];
      if (c->broken[0] != '\0') fail("connection %d: %s", i, c->broken);
      if (c->failures > 0) fail("connection %d: %d subscriptions failed", i, c->failures);
      ready += c->ready;
    }
    if (ready == conn_count) return;
    poll_once((int)(deadline_ms - now));
  }
  fail("not every connection subscribed within %d ms", OPEN_TIMEOUT_MS);
}

static uint64_t total_events(void) {
  uint64_t events = 0;
  for (int i = 0; i < conn_count; i++) events += conns[i].tally.events;
  return events;
}

static int all_done(void) {
  for (int i = 0; i < conn_count; i++) {
    if (!conns[i].tally.done) return 0;
  }
  return 1;
}

static int64_t cpu_micros(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (int64_t)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000 +
         usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

static int64_t armed_cpu, armed_ns;

/* Reads sockets only (stdin waits) until the run is over, as stream-subscriber.ts's collect. */
static void collect(int64_t timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
  for (int64_t now = now_ms(); now < deadline && !all_done(); now = now_ms()) {
    poll_once((int)(deadline - now < 5 ? deadline - now : 5));
  }
  /* Changes of other variables may still follow the last write's: wait for a quiet moment. */
  int64_t quiet_until = now_ms() + QUIET_LIMIT_MS;
  if (quiet_until > deadline) quiet_until = deadline;
  for (uint64_t events = UINT64_MAX; now_ms() < quiet_until;) {
    uint64_t seen = total_events();
    if (seen == events) break;
    events = seen;
    int64_t until = now_ms() + QUIET_MS;
    for (int64_t now = now_ms(); now < until; now = now_ms()) poll_once((int)(until - now));
  }
  struct epoll_event watch_stdin = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, STDIN_FILENO, &watch_stdin);
  /* Before the report: formatting it is not part of the run. */
  int64_t cpu = cpu_micros() - armed_cpu, wall_ns = now_ns() - armed_ns;

  uint64_t lost = 0, events = 0, covered = 0, skipped = 0;
  int64_t last_ns = 0;
  int unfinished = 0, broken = 0;
  const char *first_broken = NULL;
  printf("{\"type\":\"collected\",\"latencies\":[");
  const char *separator = "";
  for (int i = 0; i < conn_count; i++) {
    struct tally *t = &conns[i].tally;
    t->armed = 0;
    for (uint32_t s = 0; s < t->count; s++) {
      if (t->latencies[s] == INT64_MIN) continue;
      /* µs with 0.1 µs resolution, as the Node subscriber reports them. */
      printf("%s%.1f", separator, (double)t->latencies[s] / 1000);
      separator = ",";
    }
    lost += t->count - t->seen;
    events += t->events;
    covered += t->covered;
    skipped += t->skipped;
    if (t->last_ns > last_ns) last_ns = t->last_ns;
    if (!t->done) unfinished++;
    if (conns[i].broken[0] != '\0') {
      if (first_broken == NULL) first_broken = conns[i].broken;
      broken++;
    }
  }
  printf("],\"cpuMicros\":%lld,\"wallMicros\":%.1f", (long long)cpu, (double)wall_ns / 1000);
  printf(",\"lost\":%llu,\"events\":%llu,\"covered\":%llu,\"skipped\":%llu",
         (unsigned long long)lost, (unsigned long long)events, (unsigned long long)covered,
         (unsigned long long)skipped);
  printf(",\"lastNs\":\"%lld\",\"unfinished\":%d", (long long)last_ns, unfinished);
  /* The reasons are this program's own constant strings: nothing to escape. */
  if (first_broken != NULL) printf(",\"broken\":\"%d streams broke: %s\"", broken, first_broken);
  printf("}\n");
  fflush(stdout);
}

/* Handles one command line; returns 0 when the program should exit. */
static int command(const char *line) {
  if (strncmp(line, "arm ", 4) == 0) {
    uint32_t count = (uint32_t)strtoul(line + 4, NULL, 10);
    for (int i = 0; i < conn_count; i++) tally_arm(&conns[i].tally, count);
    armed_cpu = cpu_micros();
    armed_ns = now_ns();
    printf("armed\n");
  } else if (strncmp(line, "collect ", 8) == 0) {
    collect(strtoll(line + 8, NULL, 10));
  } else if (strcmp(line, "close") == 0) {
    printf("closed\n");
    fflush(stdout);
    return 0;
  } else {
    fail("unknown command: %s", line);
  }
  fflush(stdout);
  return 1;
}

/* Reads what stdin has and runs each whole line; returns 0 at its end or on "close". */
static int read_commands(void) {
  static char buffer[4096];
  static size_t length;
  ssize_t n = read(STDIN_FILENO, buffer + length, sizeof buffer - 1 - length);
  if (n < 0 && errno == EINTR) return 1;
  if (n <= 0) return 0;
  length += (size_t)n;
  buffer[length] = '\0';
  char *start = buffer;
  for (char *newline = strchr(start, '\n'); newline != NULL; newline = strchr(start, '\n')) {
    *newline = '\0';
    if (!command(start)) return 0;
    start = newline + 1;
  }
  length -= (size_t)(start - buffer);
  memmove(buffer, start, length);
  if (length == sizeof buffer - 1) fail("a command line longer than %zu bytes", length);
  return 1;
}

static unsigned char *from_hex(const char *hex, size_t *length) {
  size_t digits = strlen(hex);
  if (digits % 2 != 0) fail("odd number of hex digits");
  unsigned char *bytes = malloc(digits / 2 + 1);
  if (bytes == NULL) fail("out of memory");
  for (size_t i = 0; i < digits / 2; i++) {
    unsigned int byte;
    if (sscanf(hex + 2 * i, "%2x", &byte) != 1) fail("not hex: %s", hex);
    bytes[i] = (unsigned char)byte;
  }
  *length = digits / 2;
  return bytes;
}

static void usage(void) {
  fail("usage: COMMY_BENCH_TOKEN=<token> fanout-subscriber commy <port> <connections> "
       "<authority> <request-hex> | COMMY_BENCH_TOKEN=<token> fanout-subscriber listen <port> "
       "<connections> <authority> | fanout-subscriber redis <port> <connections> <channel>");
}

int main(int argc, char **argv) {
  /* The bench may die without closing stdin first: go with it. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc < 5) usage();
  if (strcmp(argv[1], "commy") == 0) {
    follow = FOLLOW_WATCH;
  } else if (strcmp(argv[1], "listen") == 0) {
    follow = FOLLOW_LISTEN;
  } else if (strcmp(argv[1], "redis") == 0) {
    follow = FOLLOW_REDIS;
  } else {
    usage();
  }
  const char *token = getenv("COMMY_BENCH_TOKEN");
  int over_h2 = follow != FOLLOW_REDIS;
  if (follow == FOLLOW_WATCH ? argc != 6 : argc != 5) usage();
  if (over_h2 && token == NULL) usage();
  int port = atoi(argv[2]);
  conn_count = atoi(argv[3]);
  if (port <= 0 || port > 65535 || conn_count <= 0 || conn_count > MAX_CONNECTIONS) usage();

  epoll_fd = epoll_create1(0);
  if (epoll_fd < 0) fail("epoll_create1: %s", strerror(errno));
  conns = calloc((size_t)conn_count, sizeof *conns);
  if (conns == NULL) fail("out of memory");
  size_t request_length = 0;
  unsigned char *request = follow == FOLLOW_WATCH ? from_hex(argv[5], &request_length) : NULL;
  /* One DATA frame of the default maximum size, and header fields that fit open_stream's buffer. */
  if (request_length > 16384) fail("the requests do not fit one DATA frame");
  if (over_h2 && (strlen(argv[4]) > 255 || strlen(token) > 511)) {
    fail("authority or token too long");
  }
  for (int i = 0; i < conn_count; i++) {
    struct conn *c = &conns[i];
    c->fd = connect_loopback(port);
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &event) != 0) {
      fail("epoll_ctl: %s", strerror(errno));
    }
    if (follow == FOLLOW_WATCH) {
      open_stream(c, argv[4], token, "/commy.v1.WatchService/Watch", request, request_length, 0);
    } else if (follow == FOLLOW_LISTEN) {
      /* One empty ListenRequest, and the request stream ends. */
      static const unsigned char listen_request[5] = {0};
      open_stream(c, argv[4], token, "/commy.bench.v1.EchoService/Listen", listen_request,
                  sizeof listen_request, 1);
    } else {
      char subscribe[600];
      int n = snprintf(subscribe, sizeof subscribe, "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n",
                       strlen(argv[4]), argv[4]);
      if (n < 0 || (size_t)n >= sizeof subscribe) fail("channel name too long");
      send_all(c, subscribe, (size_t)n);
    }
  }
  free(request);
  wait_until_open(now_ms() + OPEN_TIMEOUT_MS);
  printf("opened\n");
  fflush(stdout);

  struct epoll_event watch_stdin = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, STDIN_FILENO, &watch_stdin) != 0) {
    fail("epoll_ctl(stdin): %s", strerror(errno));
  }
  int64_t end_ms = now_ms() + (int64_t)MAX_LIFETIME_S * 1000;
  for (int64_t now = now_ms(); now < end_ms; now = now_ms()) {
    int wait_ms = end_ms - now < 1000 ? (int)(end_ms - now) : 1000;
    if (poll_once(wait_ms) && !read_commands()) break;
  }
  for (int i = 0; i < conn_count; i++) {
    if (conns[i].fd >= 0) close(conns[i].fd);
    free(conns[i].grpc);
    free(conns[i].tally.latencies);
  }
  free(conns);
  return 0;
}
