// The platform layer: the only place that knows how this OS maps files and
// parks threads on a shared 32-bit word. Everything above it is portable.
#pragma once

#include <cstddef>
#include <cstdint>

namespace commy {
namespace platform {

enum class WaitResult { kWoken, kNotEqual, kTimedOut };

// Sleeps while *word == expected, across processes (the word lives in a
// MAP_SHARED mapping). timeout_ns < 0 waits without a limit. Spurious
// wake-ups are possible: callers re-check the word.
WaitResult WaitOnWord(uint32_t* word, uint32_t expected, int64_t timeout_ns);

// Wakes up to `count` sleepers on `word` in any process. Returns how many
// were woken where the OS says, else 0.
int WakeWord(uint32_t* word, int count);

// Maps `length` bytes of `fd` shared. `length` may exceed the file's size:
// the tail becomes usable as the file grows, without a remap. Returns
// nullptr and sets *error to errno on failure.
void* MapShared(int fd, size_t length, bool writable, int* error);

// Replaces a mapping with anonymous, read-only zero pages, so that the file
// is released at once while stale JavaScript views still point at valid
// (zero) memory. Returns 0 or errno.
int ReleaseMapping(void* address, size_t length);

int Unmap(void* address, size_t length);

// Creates a new file at `path` (fails if one exists), writes `zero_bytes`
// zeros from its start and sizes it to `size`. Returns the descriptor, or
// -1 with *error = errno and *syscall naming the call that failed (the
// file is then removed again).
int CreateFileOfZeros(const char* path, int mode, size_t zero_bytes, size_t size, int* error,
                      const char** syscall);

// Closes `fd` and unlinks `path`, best effort (errors are ignored: what is
// left behind is an orphan the server removes at its next start).
void CloseAndUnlink(int fd, const char* path);

// The size of a page of memory.
size_t PageSize();

// Makes the calling thread yield to every other thread of normal priority
// (Linux: nice 19 for this thread alone). Best effort.
void LowerThisThreadPriority();

// Flushes [address, address + length) to the file; address is rounded down
// to a page. Returns 0 or errno.
int SyncRange(void* address, size_t length);

}  // namespace platform
}  // namespace commy
