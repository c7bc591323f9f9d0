#include "platform.h"

#include <cerrno>
#include <ctime>
#include <fcntl.h>
#include <vector>
#include <sys/resource.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#elif defined(__APPLE__)
// Darwin's private but stable address-wait primitive (what libc++ uses).
extern "C" int __ulock_wait(uint32_t operation, void* addr, uint64_t value, uint32_t timeout_us);
extern "C" int __ulock_wake(uint32_t operation, void* addr, uint64_t wake_value);
#define COMMY_UL_COMPARE_AND_WAIT_SHARED 3
#define COMMY_ULF_WAKE_ALL 0x00000100
#else
#error "commy: no cross-process wait primitive for this platform yet"
#endif

namespace commy {
namespace platform {

WaitResult WaitOnWord(uint32_t* word, uint32_t expected, int64_t timeout_ns) {
#if defined(__linux__)
  struct timespec ts;
  struct timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000LL;
    ts.tv_nsec = timeout_ns % 1000000000LL;
    tsp = &ts;
  }
  // No FUTEX_PRIVATE_FLAG: the word is shared with other processes.
  long rc = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, nullptr, 0);
  if (rc == 0) return WaitResult::kWoken;
  if (errno == EAGAIN) return WaitResult::kNotEqual;
  if (errno == ETIMEDOUT) return WaitResult::kTimedOut;
  return WaitResult::kWoken;  // EINTR: let the caller re-check.
#else
  uint32_t timeout_us = 0;
  if (timeout_ns >= 0) {
    uint64_t us = static_cast<uint64_t>(timeout_ns) / 1000;
    timeout_us = us == 0 ? 1 : (us > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(us));
  }
  if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != expected) return WaitResult::kNotEqual;
  int rc = __ulock_wait(COMMY_UL_COMPARE_AND_WAIT_SHARED, word, expected, timeout_us);
  if (rc >= 0) return WaitResult::kWoken;
  if (errno == ETIMEDOUT) return WaitResult::kTimedOut;
  return WaitResult::kWoken;
#endif
}

int WakeWord(uint32_t* word, int count) {
#if defined(__linux__)
  long rc = syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0);
  return rc < 0 ? 0 : static_cast<int>(rc);
#else
  uint32_t op = COMMY_UL_COMPARE_AND_WAIT_SHARED | (count > 1 ? COMMY_ULF_WAKE_ALL : 0);
  return __ulock_wake(op, word, 0) == 0 ? 1 : 0;
#endif
}

void* MapShared(int fd, size_t length, bool writable, int* error) {
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* address = mmap(nullptr, length, prot, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) {
    *error = errno;
    return nullptr;
  }
  return address;
}

int ReleaseMapping(void* address, size_t length) {
  void* result = mmap(address, length, PROT_READ,
                      MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return result == MAP_FAILED ? errno : 0;
}

int Unmap(void* address, size_t length) { return munmap(address, length) == 0 ? 0 : errno; }

int CreateFileOfZeros(const char* path, int mode, size_t zero_bytes, size_t size, int* error,
                      const char** syscall) {
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) {
    *error = errno;
    *syscall = "open";
    return -1;
  }
  static const std::vector<char> zeros(64 * 1024, 0);
  for (size_t done = 0; done < zero_bytes;) {
    size_t chunk = zero_bytes - done < zeros.size() ? zero_bytes - done : zeros.size();
    ssize_t written = pwrite(fd, zeros.data(), chunk, static_cast<off_t>(done));
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      *error = written < 0 ? errno : EIO;
      *syscall = "write";
      CloseAndUnlink(fd, path);
      return -1;
    }
    done += static_cast<size_t>(written);
  }
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    *error = errno;
    *syscall = "ftruncate";
    CloseAndUnlink(fd, path);
    return -1;
  }
  return fd;
}

void CloseAndUnlink(int fd, const char* path) {
  // Closed first: the unlink then frees the inode and its pages here, not
  // wherever the last descriptor would have been closed.
  close(fd);
  unlink(path);
}

size_t PageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

void LowerThisThreadPriority() {
#if defined(__linux__)
  // On Linux a nice value belongs to a thread, named by its id.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
#endif
}

}  // namespace platform
}  // namespace commy
