/*
 * A load generator for pairs of Connect unary calls (CreateService then
 * DeleteService of the same fresh name; or two Echo calls, the floor),
 * in C so that the client takes little of a 2-CPU machine from the server.
 * h2load cannot do this: it sends one fixed body, and every pair needs a
 * service name never used before.
 *
 * Transport: Connect unary over HTTP/1.1 keep-alive, one connection per
 * worker thread, one call in flight on each. The server serves HTTP/1.1
 * on its HTTP/2 port (protocol sniffing), and HTTP/1.1 needs no library.
 *
 *   COMMY_BENCH_AUTHORIZATION=<header value> \
 *     connect_pairs <host> <port> <connections> <pairs> <limit_s>
 *                   <path1> <body1_hex> <path2> <body2_hex> <counter_offset> <counter_width>
 *
 * The Authorization header's value comes in the environment, which unlike
 * the command line only its owner can read (/proc/<pid>/environ); empty or
 * unset sends none.
 *
 * Each pair takes the next pair number i, writes it as `counter_width`
 * decimal digits (zero-padded) at byte `counter_offset` of both bodies (a
 * negative offset leaves the bodies as they are), sends call 1, waits for
 * its response, sends call 2, waits. The bodies are built by the caller
 * (bench/lib/pair-load.ts) with the real protobuf code, so this program
 * knows nothing of the messages. A run ends after `pairs` pairs or
 * `limit_s` seconds.
 *
 * Prints "pairs <n> seconds <s>", then each pair's time in µs, one per line
 * in the order pairs ended. Any status other than 200, or a broken
 * connection, prints the response to stderr and exits 1: a run with errors
 * measures nothing. Built by bench/lib/pair-load.ts with `cc -O2 -pthread`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RESPONSE_MAX (1 << 20)

struct call {
  const char *path;
  unsigned char *body;
  size_t body_len;
};

struct config {
  struct sockaddr_in address;
  const char *host_header;
  const char *authorization;
  struct call calls[2];
  long counter_offset;
  int counter_width;
  long pairs;
  double limit_s;
};

static struct config cfg;
static atomic_long next_pair;
static atomic_long ended;
static double *pair_micros;
static double started_at;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, const char *detail) {
  fprintf(stderr, "connect_pairs: %s%s%s\n", what, detail[0] ? ": " : "", detail);
  exit(1);
}

static unsigned char *from_hex(const char *hex, size_t *length) {
  size_t n = strlen(hex);
  if (n % 2 != 0) fail("odd-length hex body", hex);
  unsigned char *out = malloc(n / 2 + 1);
  for (size_t i = 0; i < n / 2; i++) {
    unsigned int byte;
    if (sscanf(hex + 2 * i, "%2x", &byte) != 1) fail("bad hex body", hex);
    out[i] = (unsigned char)byte;
  }
  *length = n / 2;
  return out;
}

/* One worker's connection and its read buffer (bytes [start, end) unread). */
struct connection {
  int fd;
  char *buffer;
  size_t start;
  size_t end;
};

static void open_connection(struct connection *c) {
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) fail("socket", strerror(errno));
  if (connect(c->fd, (struct sockaddr *)&cfg.address, sizeof cfg.address) != 0)
    fail("connect", strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->buffer = malloc(RESPONSE_MAX);
  c->start = c->end = 0;
}

static void send_all(int fd, struct iovec *parts, int count) {
  while (count > 0) {
    ssize_t sent = writev(fd, parts, count);
    if (sent < 0) {
      if (errno == EINTR) continue;
      fail("send", strerror(errno));
    }
    while (count > 0 && (size_t)sent >= parts->iov_len) {
      sent -= (ssize_t)parts->iov_len;
      parts++;
      count--;
    }
    if (count > 0) {
      parts->iov_base = (char *)parts->iov_base + sent;
      parts->iov_len -= (size_t)sent;
    }
  }
}

/* Reads more bytes into the buffer, compacting it first. */
static void fill(struct connection *c) {
  if (c->start > 0) {
    memmove(c->buffer, c->buffer + c->start, c->end - c->start);
    c->end -= c->start;
    c->start = 0;
  }
  if (c->end == RESPONSE_MAX) fail("response larger than the buffer", "");
  ssize_t got = recv(c->fd, c->buffer + c->end, RESPONSE_MAX - c->end, 0);
  if (got == 0) fail("the server closed the connection", "");
  if (got < 0) {
    if (errno == EINTR) return;
    fail("recv", strerror(errno));
  }
  c->end += (size_t)got;
}

/* The value of header `name` in the head [head, head_end), or NULL. */
static const char *header_value(const char *head, const char *head_end, const char *name) {
  size_t name_len = strlen(name);
  for (const char *line = head; line < head_end;) {
    const char *eol = memmem(line, (size_t)(head_end - line), "\r\n", 2);
    if (eol == NULL) eol = head_end;
    if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
        strncasecmp(line, name, name_len) == 0) {
      const char *value = line + name_len + 1;
      while (*value == ' ') value++;
      return value;
    }
    line = eol + 2;
  }
  return NULL;
}

/*
 * Reads one response (status line, headers, a body of content-length
 * bytes; Node's HTTP/1.1 server sets it on Connect unary responses) and
 * returns its status; the body is skipped, or printed on a failure.
 */
static int read_response(struct connection *c) {
  char *head_end;
  for (;;) {
    head_end = memmem(c->buffer + c->start, c->end - c->start, "\r\n\r\n", 4);
    if (head_end != NULL) break;
    fill(c);
  }
  const char *head = c->buffer + c->start;
  int status = 0;
  if (sscanf(head, "HTTP/1.%*d %d", &status) != 1) fail("not an HTTP/1.1 response", "");
  const char *length = header_value(head, head_end, "content-length");
  if (length == NULL) fail("response without content-length", "");
  size_t body_len = strtoul(length, NULL, 10);
  size_t head_len = (size_t)(head_end + 4 - head);
  while (c->end - c->start < head_len + body_len) {
    fill(c);
    head = c->buffer + c->start;
  }
  if (status != 200) {
    fprintf(stderr, "connect_pairs: HTTP status %d:\n%.*s\n", status, (int)(head_len + body_len),
            c->buffer + c->start);
    exit(1);
  }
  c->start += head_len + body_len;
  return status;
}

static void write_counter(unsigned char *body, long value) {
  for (int digit = cfg.counter_width - 1; digit >= 0; digit--) {
    body[cfg.counter_offset + digit] = (unsigned char)('0' + value % 10);
    value /= 10;
  }
}

static void *worker(void *argument) {
  struct connection c = *(struct connection *)argument;
  unsigned char *bodies[2];
  char heads[2][1024];
  size_t head_lens[2];
  char authorization_line[600] = "";
  if (cfg.authorization[0] != '\0') {
    snprintf(authorization_line, sizeof authorization_line, "authorization: %s\r\n",
             cfg.authorization);
  }
  for (int k = 0; k < 2; k++) {
    bodies[k] = malloc(cfg.calls[k].body_len + 1);
    memcpy(bodies[k], cfg.calls[k].body, cfg.calls[k].body_len);
    int n = snprintf(heads[k], sizeof heads[k],
                     "POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/proto\r\n"
                     "connect-protocol-version: 1\r\n%s"
                     "content-length: %zu\r\n\r\n",
                     cfg.calls[k].path, cfg.host_header, authorization_line,
                     cfg.calls[k].body_len);
    if (n <= 0 || (size_t)n >= sizeof heads[k]) fail("request head too long", "");
    head_lens[k] = (size_t)n;
  }
  for (;;) {
    long i = atomic_fetch_add(&next_pair, 1);
    if (i >= cfg.pairs || now_s() - started_at > cfg.limit_s) break;
    double t0 = now_s();
    for (int k = 0; k < 2; k++) {
      if (cfg.counter_offset >= 0) write_counter(bodies[k], i);
      struct iovec parts[2] = {{heads[k], head_lens[k]}, {bodies[k], cfg.calls[k].body_len}};
      send_all(c.fd, parts, 2);
      read_response(&c);
    }
    pair_micros[atomic_fetch_add(&ended, 1)] = (now_s() - t0) * 1e6;
  }
  close(c.fd);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 12) {
    fprintf(stderr,
            "usage: COMMY_BENCH_AUTHORIZATION=<value> connect_pairs <host> <port> <connections>\n"
            "       <pairs> <limit_s> <path1> <body1_hex> <path2> <body2_hex> <counter_offset>\n"
            "       <counter_width>\n");
    return 2;
  }
  static char host_header[300];
  snprintf(host_header, sizeof host_header, "%s:%s", argv[1], argv[2]);
  cfg.host_header = host_header;
  cfg.address.sin_family = AF_INET;
  cfg.address.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &cfg.address.sin_addr) != 1) fail("not an IPv4 address", argv[1]);
  int connections = atoi(argv[3]);
  cfg.pairs = atol(argv[4]);
  cfg.limit_s = atof(argv[5]);
  const char *authorization = getenv("COMMY_BENCH_AUTHORIZATION");
  cfg.authorization = authorization == NULL ? "" : authorization;
  if (strlen(cfg.authorization) > 500) fail("the authorization value is too long", "");
  for (int k = 0; k < 2; k++) {
    cfg.calls[k].path = argv[6 + 2 * k];
    cfg.calls[k].body = from_hex(argv[7 + 2 * k], &cfg.calls[k].body_len);
  }
  cfg.counter_offset = atol(argv[10]);
  cfg.counter_width = atoi(argv[11]);
  if (connections < 1 || cfg.pairs < 1) fail("connections and pairs must be positive", "");
  for (int k = 0; k < 2 && cfg.counter_offset >= 0; k++) {
    if ((size_t)cfg.counter_offset + (size_t)cfg.counter_width > cfg.calls[k].body_len)
      fail("the counter does not fit in a body", "");
  }
  pair_micros = calloc((size_t)cfg.pairs, sizeof *pair_micros);
  pthread_t *threads = calloc((size_t)connections, sizeof *threads);
  struct connection *open = calloc((size_t)connections, sizeof *open);
  // Connected before the clock starts: the run measures calls, not handshakes.
  for (int t = 0; t < connections; t++) open_connection(&open[t]);
  started_at = now_s();
  for (int t = 0; t < connections; t++) pthread_create(&threads[t], NULL, worker, &open[t]);
  for (int t = 0; t < connections; t++) pthread_join(threads[t], NULL);
  double seconds = now_s() - started_at;
  long done = atomic_load(&ended);
  printf("pairs %ld seconds %.6f\n", done, seconds);
  for (long i = 0; i < done; i++) printf("%.1f\n", pair_micros[i]);
  return 0;
}
