// The native half of src/shm: maps service files as SharedArrayBuffers and
// parks threads on shared words. It knows nothing of the file format.
#include <node.h>
#include <uv.h>
#include <v8.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "platform.h"

namespace commy {
namespace {

using v8::BackingStore;
using v8::Context;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Global;
using v8::HandleScope;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::SharedArrayBuffer;
using v8::String;
using v8::Value;

// A watcher thread re-checks its stop flag at least this often, which
// bounds how long close() can wait for a thread that raced its wake-up.
constexpr int64_t kWatcherRecheckNs = 100LL * 1000 * 1000;

void ThrowTypeError(Isolate* isolate, const char* message) {
  isolate->ThrowException(v8::Exception::TypeError(
      String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

void ThrowRangeError(Isolate* isolate, const char* message) {
  isolate->ThrowException(v8::Exception::RangeError(
      String::NewFromUtf8(isolate, message).ToLocalChecked()));
}

bool ReadWholeNumber(Isolate* isolate, Local<Value> value, double max, double* out) {
  if (!value->IsNumber()) return false;
  double number = value.As<v8::Number>()->Value();
  if (!std::isfinite(number) || number < 0 || number > max || std::floor(number) != number) {
    return false;
  }
  *out = number;
  return true;
}

// Resolves (sab, byteOffset) to an aligned 32-bit word inside the buffer.
// `keep`, when given, receives the backing store for a thread that outlives
// the call; without it no shared_ptr is made (two atomic reference-count
// operations that every wait and wake would pay).
uint32_t* WordAt(Isolate* isolate, Local<Value> buffer, Local<Value> offset,
                 std::shared_ptr<BackingStore>* keep) {
  if (!buffer->IsSharedArrayBuffer()) {
    ThrowTypeError(isolate, "expected a SharedArrayBuffer");
    return nullptr;
  }
  Local<SharedArrayBuffer> sab = buffer.As<SharedArrayBuffer>();
  double length = static_cast<double>(sab->ByteLength());
  double byte_offset = 0;
  if (!ReadWholeNumber(isolate, offset, length, &byte_offset) ||
      static_cast<uint64_t>(byte_offset) % 4 != 0 || byte_offset + 4 > length) {
    ThrowRangeError(isolate, "word offset must be a multiple of 4 inside the buffer");
    return nullptr;
  }
  if (keep != nullptr) *keep = sab->GetBackingStore();
  return reinterpret_cast<uint32_t*>(static_cast<char*>(sab->Data()) +
                                     static_cast<size_t>(byte_offset));
}

uint32_t LoadWord(uint32_t* word) { return __atomic_load_n(word, __ATOMIC_SEQ_CST); }

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Spins until *word != expected or spin_ns elapse. True when it changed.
bool SpinWhileEqual(uint32_t* word, uint32_t expected, int64_t spin_ns) {
  if (spin_ns <= 0) return LoadWord(word) != expected;
  int64_t deadline = NowNs() + spin_ns;
  do {
    for (int i = 0; i < 64; i++) {
      if (LoadWord(word) != expected) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  } while (NowNs() < deadline);
  return LoadWord(word) != expected;
}

// Sleeps on word while it equals expected, announcing itself in *waiters
// (if any) so that writers know a wake-up is needed. The increment comes
// before the final re-check: with sequentially consistent operations on
// both sides, either the writer sees the waiter or the waiter sees the write.
platform::WaitResult SleepWhileEqual(uint32_t* word, uint32_t* waiters, uint32_t expected,
                                     int64_t timeout_ns) {
  if (waiters != nullptr) __atomic_fetch_add(waiters, 1, __ATOMIC_SEQ_CST);
  platform::WaitResult result = platform::WaitResult::kNotEqual;
  if (LoadWord(word) == expected) result = platform::WaitOnWord(word, expected, timeout_ns);
  if (waiters != nullptr) __atomic_fetch_sub(waiters, 1, __ATOMIC_SEQ_CST);
  return result;
}

// Faults pages of mappings in on one background thread, ahead of the
// owner's allocations: the first touch of a fresh page costs from
// microseconds to milliseconds (on a VM the host may back the guest's memory
// only then), which allocate() would otherwise pay on the event loop.
//
// Each page is touched with an atomic add of 0 to one word: a write fault
// that makes the page resident and writable without changing a byte, even
// under a concurrent writer. Touching page by page (rather than one
// madvise(MADV_POPULATE_WRITE) over the range) never holds the process's
// mmap lock, which V8 needs exclusively for every change to its own
// mappings. Because a touch of a released mapping would be a write to a
// read-only page, release() cancels the mapping's jobs first (Cancel).
class Prefaulter {
 public:
  static void Request(std::shared_ptr<BackingStore> store, size_t offset, size_t length) {
    Prefaulter* self = Instance();
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      self->jobs_.push_back(Job{std::move(store), offset, length});
    }
    self->changed_.notify_all();
  }

  // Returns once no job touches the mapping at `data` and none is queued.
  static void Cancel(void* data) {
    Prefaulter* self = Instance();
    std::deque<Job> dropped;  // destroyed outside the lock
    std::unique_lock<std::mutex> lock(self->mutex_);
    for (auto it = self->jobs_.begin(); it != self->jobs_.end();) {
      if (it->store->Data() == data) {
        dropped.push_back(std::move(*it));
        it = self->jobs_.erase(it);
      } else {
        ++it;
      }
    }
    if (self->current_ != data) return;
    self->cancel_.store(true);
    self->changed_.wait(lock, [self, data] { return self->current_ != data; });
  }

 private:
  struct Job {
    std::shared_ptr<BackingStore> store;  // keeps the mapping alive until done
    size_t offset;
    size_t length;
  };

  // Created on first use and never destroyed: the thread may still run while
  // static destructors do at exit.
  static Prefaulter* Instance() {
    static Prefaulter* instance = [] {
      Prefaulter* created = new Prefaulter();
      std::thread([created] { created->Run(); }).detach();
      return created;
    }();
    return instance;
  }

  void Run() {
    // Background work: on a busy machine it must not take the CPU from the
    // event loop it works for.
    platform::LowerThisThreadPriority();
    const size_t page = platform::PageSize();
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return !jobs_.empty(); });
        job = std::move(jobs_.front());
        jobs_.pop_front();
        current_ = job.store->Data();
      }
      uintptr_t base = reinterpret_cast<uintptr_t>(current_);
      uintptr_t first = (base + job.offset + page - 1) & ~(page - 1);
      for (uintptr_t at = first; at < base + job.offset + job.length; at += page) {
        if (cancel_.load(std::memory_order_relaxed)) break;
        __atomic_fetch_add(reinterpret_cast<uint32_t*>(at), 0, __ATOMIC_RELAXED);
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        current_ = nullptr;
        cancel_.store(false);
      }
      changed_.notify_all();
      job.store.reset();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;  // a job queued, or the current one ended
  std::deque<Job> jobs_;
  void* current_ = nullptr;  // the mapping the thread is touching
  std::atomic<bool> cancel_{false};
};

void MappingDeleter(void* data, size_t length, void* /*deleter_data*/) {
  platform::Unmap(data, length);
}

// mapShared(fd, length, writable, path) -> SharedArrayBuffer
void MapShared(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  double fd = 0;
  double length = 0;
  if (!ReadWholeNumber(isolate, args[0], INT_MAX, &fd)) {
    return ThrowTypeError(isolate, "fd must be a file descriptor");
  }
  // 2^40 bytes: far beyond any service file, well inside V8's limits.
  if (!ReadWholeNumber(isolate, args[1], 1099511627776.0, &length) || length == 0) {
    return ThrowRangeError(isolate, "length must be a positive whole number of bytes");
  }
  String::Utf8Value path(isolate, args[3]);
  int error = 0;
  void* address = platform::MapShared(static_cast<int>(fd), static_cast<size_t>(length),
                                      args[2]->BooleanValue(isolate), &error);
  if (address == nullptr) {
    isolate->ThrowException(node::ErrnoException(isolate, error, "mmap", nullptr, *path));
    return;
  }
  std::unique_ptr<BackingStore> store = SharedArrayBuffer::NewBackingStore(
      address, static_cast<size_t>(length), MappingDeleter, nullptr);
  args.GetReturnValue().Set(SharedArrayBuffer::New(isolate, std::move(store)));
}

// ---- file work on libuv's threadpool ----
//
// Making a service file and removing one are a handful of system calls
// each, the costly ones being the first writes of a file's pages and the
// freeing of an inode. Each job does them for several files at once, off
// the event loop, and calls back once: one hand-over to the threadpool per
// batch instead of one per system call.

// A callback into JavaScript once a job is done, in the context that asked.
struct FileJob {
  FileJob(Isolate* isolate, Local<Function> callback)
      : isolate(isolate),
        context(isolate, isolate->GetCurrentContext()),
        callback(isolate, callback) {
    request.data = this;
  }
  virtual ~FileJob() = default;
  void Queue(uv_work_cb work, uv_after_work_cb done) {
    uv_queue_work(node::GetCurrentEventLoop(isolate), &request, work, done);
  }
  void CallBack(Local<Value> result) {
    Local<Context> here = context.Get(isolate);
    Local<Value> argv[] = {result};
    node::MakeCallback(isolate, here->Global(), callback.Get(isolate), 1, argv, {0, 0});
  }
  uv_work_t request;
  Isolate* isolate;
  Global<Context> context;
  Global<Function> callback;
};

struct NewFile {
  std::string path;
  int fd = -1;
  void* address = nullptr;
  int error = 0;
  const char* syscall = nullptr;
};

struct MakeFilesJob : FileJob {
  using FileJob::FileJob;
  std::vector<NewFile> files;
  int mode = 0600;
  size_t zero_bytes = 0;
  size_t size = 0;
  size_t length = 0;
};

void MakeFilesWork(uv_work_t* request) {
  MakeFilesJob* job = static_cast<MakeFilesJob*>(request->data);
  for (NewFile& file : job->files) {
    file.fd = platform::CreateFileOfZeros(file.path.c_str(), job->mode, job->zero_bytes, job->size,
                                          &file.error, &file.syscall);
    if (file.fd < 0) continue;
    file.address = platform::MapShared(file.fd, job->length, true, &file.error);
    if (file.address != nullptr) continue;
    file.syscall = "mmap";
    platform::CloseAndUnlink(file.fd, file.path.c_str());
  }
}

void MakeFilesDone(uv_work_t* request, int /*status*/) {
  std::unique_ptr<MakeFilesJob> job(static_cast<MakeFilesJob*>(request->data));
  Isolate* isolate = job->isolate;
  HandleScope scope(isolate);
  Local<Context> context = job->context.Get(isolate);
  Context::Scope context_scope(context);
  Local<v8::Array> results = v8::Array::New(isolate, static_cast<int>(job->files.size()));
  for (size_t i = 0; i < job->files.size(); i++) {
    const NewFile& file = job->files[i];
    Local<Value> result;
    if (file.address == nullptr) {
      result = node::ErrnoException(isolate, file.error, file.syscall, nullptr, file.path.c_str());
    } else {
      std::unique_ptr<BackingStore> store =
          SharedArrayBuffer::NewBackingStore(file.address, job->length, MappingDeleter, nullptr);
      Local<Object> made = Object::New(isolate);
      made->Set(context, String::NewFromUtf8Literal(isolate, "fd"), v8::Integer::New(isolate, file.fd))
          .Check();
      made->Set(context, String::NewFromUtf8Literal(isolate, "buffer"),
                SharedArrayBuffer::New(isolate, std::move(store)))
          .Check();
      result = made;
    }
    results->Set(context, static_cast<uint32_t>(i), result).Check();
  }
  job->CallBack(results);
}

// makeFiles(paths, zeroBytes, size, mode, length, callback): for each path,
// on the threadpool, a new file (see platform::CreateFileOfZeros) mapped
// shared and writable over `length` bytes. Calls back with one result per
// path: {fd, buffer}, or the error.
void MakeFiles(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  Local<Context> context = isolate->GetCurrentContext();
  if (!args[0]->IsArray()) return ThrowTypeError(isolate, "paths must be an array");
  double zero_bytes = 0, size = 0, mode = 0, length = 0;
  if (!ReadWholeNumber(isolate, args[1], 1099511627776.0, &zero_bytes) ||
      !ReadWholeNumber(isolate, args[2], 1099511627776.0, &size) ||
      !ReadWholeNumber(isolate, args[3], 07777, &mode) ||
      !ReadWholeNumber(isolate, args[4], 1099511627776.0, &length) || length == 0 ||
      zero_bytes > size) {
    return ThrowRangeError(isolate, "sizes must be whole numbers, zeroBytes <= size, length > 0");
  }
  if (!args[5]->IsFunction()) return ThrowTypeError(isolate, "callback must be a function");
  auto job = std::make_unique<MakeFilesJob>(isolate, args[5].As<Function>());
  job->zero_bytes = static_cast<size_t>(zero_bytes);
  job->size = static_cast<size_t>(size);
  job->mode = static_cast<int>(mode);
  job->length = static_cast<size_t>(length);
  Local<v8::Array> paths = args[0].As<v8::Array>();
  for (uint32_t i = 0; i < paths->Length(); i++) {
    Local<Value> path = paths->Get(context, i).ToLocalChecked();
    if (!path->IsString()) return ThrowTypeError(isolate, "paths must be strings");
    job->files.push_back(NewFile{*String::Utf8Value(isolate, path)});
  }
  job.release()->Queue(MakeFilesWork, MakeFilesDone);
}

struct DoomedFile {
  std::shared_ptr<BackingStore> store;  // keeps the mapping alive until released
  int fd;
  std::string path;
};

struct RemoveFilesJob : FileJob {
  using FileJob::FileJob;
  std::vector<DoomedFile> files;
};

void RemoveFilesWork(uv_work_t* request) {
  RemoveFilesJob* job = static_cast<RemoveFilesJob*>(request->data);
  for (DoomedFile& file : job->files) {
    Prefaulter::Cancel(file.store->Data());
    platform::ReleaseMapping(file.store->Data(), file.store->ByteLength());
    platform::CloseAndUnlink(file.fd, file.path.c_str());
  }
}

void RemoveFilesDone(uv_work_t* request, int /*status*/) {
  std::unique_ptr<RemoveFilesJob> job(static_cast<RemoveFilesJob*>(request->data));
  HandleScope scope(job->isolate);
  Context::Scope context_scope(job->context.Get(job->isolate));
  job->CallBack(v8::Undefined(job->isolate));
}

// removeFiles(buffers, fds, paths, callback): on the threadpool, releases
// each mapping (as release() does), closes its descriptor and unlinks its
// path, best effort; then calls back.
void RemoveFiles(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  Local<Context> context = isolate->GetCurrentContext();
  if (!args[0]->IsArray() || !args[1]->IsArray() || !args[2]->IsArray()) {
    return ThrowTypeError(isolate, "buffers, fds and paths must be arrays");
  }
  if (!args[3]->IsFunction()) return ThrowTypeError(isolate, "callback must be a function");
  Local<v8::Array> buffers = args[0].As<v8::Array>();
  Local<v8::Array> fds = args[1].As<v8::Array>();
  Local<v8::Array> paths = args[2].As<v8::Array>();
  if (fds->Length() != buffers->Length() || paths->Length() != buffers->Length()) {
    return ThrowRangeError(isolate, "buffers, fds and paths must be as long");
  }
  auto job = std::make_unique<RemoveFilesJob>(isolate, args[3].As<Function>());
  for (uint32_t i = 0; i < buffers->Length(); i++) {
    Local<Value> buffer = buffers->Get(context, i).ToLocalChecked();
    Local<Value> path = paths->Get(context, i).ToLocalChecked();
    double fd = 0;
    if (!buffer->IsSharedArrayBuffer() || !path->IsString() ||
        !ReadWholeNumber(isolate, fds->Get(context, i).ToLocalChecked(), INT_MAX, &fd)) {
      return ThrowTypeError(isolate, "expected a SharedArrayBuffer, a descriptor and a path");
    }
    job->files.push_back(DoomedFile{buffer.As<SharedArrayBuffer>()->GetBackingStore(),
                                    static_cast<int>(fd), *String::Utf8Value(isolate, path)});
  }
  job.release()->Queue(RemoveFilesWork, RemoveFilesDone);
}

// release(sab): swaps the file out of the mapping (see platform.h).
void Release(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (!args[0]->IsSharedArrayBuffer()) return ThrowTypeError(isolate, "expected a SharedArrayBuffer");
  std::shared_ptr<BackingStore> store = args[0].As<SharedArrayBuffer>()->GetBackingStore();
  Prefaulter::Cancel(store->Data());
  int error = platform::ReleaseMapping(store->Data(), store->ByteLength());
  if (error != 0) isolate->ThrowException(node::ErrnoException(isolate, error, "mmap"));
}

// sync(sab, byteOffset, length, path)
void Sync(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (!args[0]->IsSharedArrayBuffer()) return ThrowTypeError(isolate, "expected a SharedArrayBuffer");
  std::shared_ptr<BackingStore> store = args[0].As<SharedArrayBuffer>()->GetBackingStore();
  double limit = static_cast<double>(store->ByteLength());
  double offset = 0;
  double length = 0;
  if (!ReadWholeNumber(isolate, args[1], limit, &offset) ||
      !ReadWholeNumber(isolate, args[2], limit, &length) || offset + length > limit) {
    return ThrowRangeError(isolate, "sync range must lie inside the buffer");
  }
  String::Utf8Value path(isolate, args[3]);
  int error = platform::SyncRange(static_cast<char*>(store->Data()) + static_cast<size_t>(offset),
                                  static_cast<size_t>(length));
  if (error != 0) isolate->ThrowException(node::ErrnoException(isolate, error, "msync", nullptr, *path));
}

// wake(sab, byteOffset, count) -> number woken
void Wake(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  uint32_t* word = WordAt(isolate, args[0], args[1], nullptr);
  if (word == nullptr) return;
  double count = INT_MAX;
  if (!args[2]->IsUndefined() && !ReadWholeNumber(isolate, args[2], INT_MAX, &count)) {
    return ThrowRangeError(isolate, "count must be a whole number");
  }
  args.GetReturnValue().Set(platform::WakeWord(word, static_cast<int>(count)));
}

// What waitSync returns (src/shm/native.ts has the same numbers): a number,
// because making a string per call cost a busy reader an allocation.
enum WaitCode { kOk = 0, kNotEqual = 1, kTimedOut = 2 };

// waitSync(sab, byteOffset, expected, timeoutMs, spinMicros, waitersOffset)
//   -> a WaitCode. Blocks the calling thread: for worker threads and
//   measurements, never for the main event loop.
void WaitSync(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  uint32_t* word = WordAt(isolate, args[0], args[1], nullptr);
  if (word == nullptr) return;
  uint32_t* waiters = nullptr;
  if (!args[5]->IsUndefined() && !(waiters = WordAt(isolate, args[0], args[5], nullptr))) return;
  double expected = 0;
  if (!ReadWholeNumber(isolate, args[2], UINT32_MAX, &expected)) {
    return ThrowRangeError(isolate, "expected must be a 32-bit unsigned value");
  }
  double timeout_ms = -1;
  if (!args[3]->IsUndefined() && !args[3]->IsNull() &&
      !ReadWholeNumber(isolate, args[3], 1e12, &timeout_ms)) {
    return ThrowRangeError(isolate, "timeout must be a whole number of milliseconds");
  }
  double spin_us = 0;
  if (!args[4]->IsUndefined() && !ReadWholeNumber(isolate, args[4], 1e9, &spin_us)) {
    return ThrowRangeError(isolate, "spin must be a whole number of microseconds");
  }
  auto answer = [&](WaitCode code) { args.GetReturnValue().Set(static_cast<int32_t>(code)); };
  uint32_t value = static_cast<uint32_t>(expected);
  if (LoadWord(word) != value) return answer(kNotEqual);
  if (SpinWhileEqual(word, value, static_cast<int64_t>(spin_us * 1000))) return answer(kOk);
  int64_t deadline = timeout_ms < 0 ? -1 : NowNs() + static_cast<int64_t>(timeout_ms * 1e6);
  while (LoadWord(word) == value) {
    int64_t remaining = deadline < 0 ? -1 : deadline - NowNs();
    if (deadline >= 0 && remaining <= 0) return answer(kTimedOut);
    SleepWhileEqual(word, waiters, value, remaining);
  }
  answer(kOk);
}

// prefault(sab, byteOffset, length): queues the range for the background
// thread and returns at once. A hint: nothing breaks if it is never done.
void Prefault(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (!args[0]->IsSharedArrayBuffer()) return ThrowTypeError(isolate, "expected a SharedArrayBuffer");
  std::shared_ptr<BackingStore> store = args[0].As<SharedArrayBuffer>()->GetBackingStore();
  double limit = static_cast<double>(store->ByteLength());
  double offset = 0;
  double length = 0;
  if (!ReadWholeNumber(isolate, args[1], limit, &offset) ||
      !ReadWholeNumber(isolate, args[2], limit, &length) || offset + length > limit) {
    return ThrowRangeError(isolate, "prefault range must lie inside the buffer");
  }
  if (length == 0) return;
  Prefaulter::Request(std::move(store), static_cast<size_t>(offset), static_cast<size_t>(length));
}

// A thread that sleeps on one word and tells JavaScript, through a libuv
// async handle, each time the word has moved. Several moves between two
// turns of the event loop arrive as one call with the latest value.
class Watcher {
 public:
  static void Start(const FunctionCallbackInfo<Value>& args);
  static void Close(const FunctionCallbackInfo<Value>& args);
  static void Ref(const FunctionCallbackInfo<Value>& args);
  static void Unref(const FunctionCallbackInfo<Value>& args);
  static Global<FunctionTemplate>* template_;

 private:
  Watcher(Isolate* isolate, std::shared_ptr<BackingStore> store, uint32_t* word, uint32_t* waiters,
          int64_t spin_ns)
      : isolate_(isolate), store_(std::move(store)), word_(word), waiters_(waiters), spin_ns_(spin_ns) {}

  void Run() {
    uint32_t last = first_;
    while (!stopping_.load()) {
      if (!SpinWhileEqual(word_, last, spin_ns_)) {
        SleepWhileEqual(word_, waiters_, last, kWatcherRecheckNs);
      }
      uint32_t now = LoadWord(word_);
      if (now != last && !stopping_.load()) {
        last = now;
        latest_.store(now);
        uv_async_send(&async_);
      }
    }
  }

  static void OnAsync(uv_async_t* handle) {
    Watcher* self = static_cast<Watcher*>(handle->data);
    Isolate* isolate = self->isolate_;
    HandleScope scope(isolate);
    if (self->callback_.IsEmpty()) return;
    Local<Object> receiver = self->object_.Get(isolate);
    Local<Value> argv[] = {v8::Number::New(isolate, self->latest_.load())};
    node::MakeCallback(isolate, receiver, self->callback_.Get(isolate), 1, argv, {0, 0});
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    stopping_.store(true);
    platform::WakeWord(word_, INT_MAX);
    thread_.join();
    callback_.Reset();
    object_.Reset();
    node::RemoveEnvironmentCleanupHook(isolate_, CleanupHook, this);
    uv_close(reinterpret_cast<uv_handle_t*>(&async_),
             [](uv_handle_t* handle) { delete static_cast<Watcher*>(handle->data); });
  }

  static void CleanupHook(void* arg) { static_cast<Watcher*>(arg)->Stop(); }

  static Watcher* Unwrap(const FunctionCallbackInfo<Value>& args) {
    Local<Object> self = args.This();
    if (self->InternalFieldCount() < 1) return nullptr;
    return static_cast<Watcher*>(self->GetAlignedPointerFromInternalField(0));
  }


  Isolate* isolate_;
  std::shared_ptr<BackingStore> store_;  // keeps the mapping alive for the thread
  uint32_t* word_;
  uint32_t* waiters_;
  int64_t spin_ns_;
  uint32_t first_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> latest_{0};
  bool stopped_ = false;
  uv_async_t async_;
  std::thread thread_;
  Global<Function> callback_;
  Global<Object> object_;
};

Global<FunctionTemplate>* Watcher::template_ = nullptr;

void Watcher::Close(const FunctionCallbackInfo<Value>& args) {
  Watcher* watcher = Unwrap(args);
  if (watcher == nullptr || watcher->stopped_) return;
  args.This()->SetAlignedPointerInInternalField(0, nullptr);
  watcher->Stop();
}

void Watcher::Ref(const FunctionCallbackInfo<Value>& args) {
  Watcher* watcher = Unwrap(args);
  if (watcher != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&watcher->async_));
}

void Watcher::Unref(const FunctionCallbackInfo<Value>& args) {
  Watcher* watcher = Unwrap(args);
  if (watcher != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&watcher->async_));
}

// watch(sab, byteOffset, waitersOffset | undefined, callback(value), spinMicros) -> Watcher
void Watcher::Start(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  Local<Context> context = isolate->GetCurrentContext();
  std::shared_ptr<BackingStore> store;
  uint32_t* word = WordAt(isolate, args[0], args[1], &store);
  if (word == nullptr) return;
  uint32_t* waiters = nullptr;
  if (!args[2]->IsUndefined() && !(waiters = WordAt(isolate, args[0], args[2], nullptr))) return;
  if (!args[3]->IsFunction()) return ThrowTypeError(isolate, "callback must be a function");
  double spin_us = 0;
  if (!args[4]->IsUndefined() && !ReadWholeNumber(isolate, args[4], 1e9, &spin_us)) {
    return ThrowRangeError(isolate, "spin must be a whole number of microseconds");
  }
  Local<Object> object;
  if (!template_->Get(isolate)->InstanceTemplate()->NewInstance(context).ToLocal(&object)) return;

  Watcher* watcher = new Watcher(isolate, store, word, waiters, static_cast<int64_t>(spin_us * 1000));
  watcher->first_ = LoadWord(word);
  watcher->callback_.Reset(isolate, args[3].As<Function>());
  watcher->object_.Reset(isolate, object);
  watcher->async_.data = watcher;
  uv_async_init(node::GetCurrentEventLoop(isolate), &watcher->async_, OnAsync);
  object->SetAlignedPointerInInternalField(0, watcher);
  node::AddEnvironmentCleanupHook(isolate, CleanupHook, watcher);
  watcher->thread_ = std::thread([watcher] { watcher->Run(); });
  args.GetReturnValue().Set(object);
}

void SetMethod(Isolate* isolate, Local<Context> context, Local<Object> target, const char* name,
               v8::FunctionCallback callback) {
  Local<Function> fn = FunctionTemplate::New(isolate, callback)->GetFunction(context).ToLocalChecked();
  target->Set(context, String::NewFromUtf8(isolate, name).ToLocalChecked(), fn).Check();
}

}  // namespace

void Init(Local<Object> exports, Local<Value> /*module*/, Local<Context> context) {
  Isolate* isolate = context->GetIsolate();
  Local<FunctionTemplate> watcher = FunctionTemplate::New(isolate);
  watcher->SetClassName(String::NewFromUtf8(isolate, "Watcher").ToLocalChecked());
  watcher->InstanceTemplate()->SetInternalFieldCount(1);
  Local<v8::ObjectTemplate> proto = watcher->PrototypeTemplate();
  proto->Set(isolate, "close", FunctionTemplate::New(isolate, Watcher::Close));
  proto->Set(isolate, "ref", FunctionTemplate::New(isolate, Watcher::Ref));
  proto->Set(isolate, "unref", FunctionTemplate::New(isolate, Watcher::Unref));
  // One template per isolate would be cleaner; this module is loaded once
  // per process in practice, and a second isolate gets its own copy.
  Watcher::template_ = new Global<FunctionTemplate>(isolate, watcher);

  SetMethod(isolate, context, exports, "mapShared", MapShared);
  SetMethod(isolate, context, exports, "release", Release);
  SetMethod(isolate, context, exports, "makeFiles", MakeFiles);
  SetMethod(isolate, context, exports, "removeFiles", RemoveFiles);
  SetMethod(isolate, context, exports, "sync", Sync);
  SetMethod(isolate, context, exports, "prefault", Prefault);
  SetMethod(isolate, context, exports, "wake", Wake);
  SetMethod(isolate, context, exports, "waitSync", WaitSync);
  SetMethod(isolate, context, exports, "watch", Watcher::Start);
}

}  // namespace commy

NODE_MODULE_INIT() { commy::Init(exports, module, context); }
