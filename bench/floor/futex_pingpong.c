/*
 * The floor for waking a reader that really sleeps: two processes share a
 * MAP_SHARED file and hand a turn back and forth with raw futex calls, no
 * spinning. Before each hand-over the sender sleeps `gap_us` (so the other
 * side has been asleep at least that long, as a real idle reader would be),
 * stamps CLOCK_MONOTONIC into the shared page, bumps the turn word and
 * calls FUTEX_WAKE. The receiver, woken from FUTEX_WAIT, reads the clock:
 * now - stamp is one one-way latency sample. CLOCK_MONOTONIC is one clock
 * for the whole machine, so stamps from the two processes compare directly.
 *
 *   futex_pingpong <file> <legs> <gap_us> [<cpu> <cpu>]
 *
 * With two CPU numbers, the parent runs on the first and the child on the
 * second (as the bench pins its own writer and reader). Prints one sample
 * per line (nanoseconds), one per leg, in leg order.
 * Built by bench/floor/futex.ts with `cc -O2`; Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct shared {
  uint32_t turn; /* legs handed over so far: the futex word */
  uint32_t pad[15];
  int64_t stamp; /* CLOCK_MONOTONIC of the latest hand-over, in ns */
  uint32_t pad2[14];
  int64_t samples[]; /* one per leg, written by that leg's receiver */
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_us(long us) {
  if (us <= 0) return;
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* No FUTEX_PRIVATE_FLAG: the word is shared with another process. */
static void futex_wait(uint32_t *word, uint32_t expected) {
  syscall(SYS_futex, word, FUTEX_WAIT, expected, NULL, NULL, 0);
}

static void futex_wake(uint32_t *word) { syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0); }

/* Keeps the calling process on one CPU; a negative cpu leaves it to the scheduler. */
static int pin(int cpu) {
  if (cpu < 0) return 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set);
}

static void play(struct shared *s, int side, uint32_t legs, long gap_us) {
  for (uint32_t leg = 0; leg < legs; leg++) {
    if ((int)(leg % 2) == side) {
      sleep_us(gap_us);
      __atomic_store_n(&s->stamp, now_ns(), __ATOMIC_SEQ_CST);
      __atomic_store_n(&s->turn, leg + 1, __ATOMIC_SEQ_CST);
      futex_wake(&s->turn);
    } else {
      while (__atomic_load_n(&s->turn, __ATOMIC_SEQ_CST) == leg) futex_wait(&s->turn, leg);
      int64_t t = now_ns();
      s->samples[leg] = t - __atomic_load_n(&s->stamp, __ATOMIC_SEQ_CST);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 6) {
    fprintf(stderr, "usage: %s <file> <legs> <gap_us> [<cpu> <cpu>]\n", argv[0]);
    return 2;
  }
  uint32_t legs = (uint32_t)strtoul(argv[2], NULL, 10);
  long gap_us = strtol(argv[3], NULL, 10);
  int cpus[2] = {-1, -1};
  if (argc == 6) {
    cpus[0] = atoi(argv[4]);
    cpus[1] = atoi(argv[5]);
  }
  if (legs == 0 || legs > 10000000 || gap_us < 0 || gap_us > 1000000) {
    fprintf(stderr, "legs must be 1..10^7 and gap_us 0..10^6\n");
    return 2;
  }
  size_t size = sizeof(struct shared) + (size_t)legs * sizeof(int64_t);
  int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
    perror("open/ftruncate");
    return 1;
  }
  struct shared *s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (s == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  pid_t child = fork();
  if (child < 0) {
    perror("fork");
    return 1;
  }
  if (child == 0) {
    /* The child maps the file itself, as an unrelated process would. */
    int cfd = open(argv[1], O_RDWR);
    struct shared *cs = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
    if (cfd < 0 || cs == MAP_FAILED || pin(cpus[1]) != 0) _exit(1);
    play(cs, 1, legs, gap_us);
    _exit(0);
  }
  if (pin(cpus[0]) != 0) {
    perror("sched_setaffinity");
    return 1;
  }
  play(s, 0, legs, gap_us);
  int status = 0;
  if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "the child failed\n");
    return 1;
  }
  for (uint32_t leg = 0; leg < legs; leg++) printf("%lld\n", (long long)s->samples[leg]);
  munmap(s, size);
  close(fd);
  unlink(argv[1]);
  return 0;
}
