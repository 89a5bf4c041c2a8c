// The exchange of a partitioned network's spikes between the processes of one machine, through
// shared memory (sapicore.functional.running.partition).
//
// A channel is a POSIX shared-memory segment that every rank maps: one mark per rank (a counter of
// the exchanges it has posted, and its process id), then two banks of `world` slots of `slot_bytes`,
// used at alternate exchanges. Exchange k: each rank copies its values into its slot of bank k mod 2,
// posts k + 1 (release), waits until every other rank has posted k + 1 (acquire) and reads their
// slots. A rank can only write bank k mod 2 again at exchange k + 2, after every rank has posted
// k + 2, that is after every rank has finished reading exchange k: two banks are enough.
//
// A waiting rank spins briefly, then yields the core; every 5 ms it checks that the ranks it waits
// for still run (a process that died never posts; it may linger as a zombie until its launcher reaps
// it) and gives up after the channel's timeout. Either raises an error that says which rank and why.
//
// sapicore::exchange_gather(local, channel, segments) -> whole
//   segments  (start, size) pairs: runs of `size` neurons of a population from its neuron `start`;
//             neuron i of a population is rank i mod world's (NEST's round-robin)
//   local     (n,) or (rows, n): this rank's neurons of each segment in order, segment after segment
//   whole     (sum of sizes,) or (rows, sum of sizes): every segment's values in the whole order
// Values are copied as bytes (any dtype), so the result equals the values each rank holds, bit for bit.
//
// The C functions sapicore_exchange_open, _unlink, _check_pids, _close, _stats, _error and _failure
// manage channels (called through ctypes).
#include <torch/extension.h>
#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/inductor/aoti_torch/utils.h>

#if defined(__unix__) || defined(__APPLE__)  // POSIX shared memory; elsewhere the library has no exchange
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <mutex>
#include <sched.h>
#include <signal.h>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SAPICORE_RELAX() _mm_pause()
#else
#define SAPICORE_RELAX() ((void)0)
#endif

namespace {

struct alignas(64) Mark {
  std::atomic<uint64_t> posted;  // exchanges this rank has posted
  int64_t pid;                   // its process id
};

struct Channel {
  char* base = nullptr;
  size_t bytes = 0;
  int64_t rank = 0, world = 0, slot_bytes = 0;
  uint64_t count = 0;      // exchanges this rank has made
  double timeout = 600.0;  // seconds a rank waits for the others
  bool check_pids = true;  // the others' process ids are visible (one process namespace)
  double waited = 0.0;     // seconds spent waiting for the others
  uint64_t received = 0;   // bytes this rank has read from the others
  Mark* marks() const { return reinterpret_cast<Mark*>(base); }
  char* slot(uint64_t bank, int64_t owner) const {
    return base + world * sizeof(Mark) + ((bank & 1) * world + owner) * slot_bytes;
  }
};

std::mutex registry_lock;
std::deque<Channel> channels;  // by number (a deque: a channel stays in place); a closed one has base == nullptr
std::string last_error;       // why the latest open, unlink or check failed
std::string failure;          // why an exchange failed (compiled code loses the exception's text)

[[noreturn]] void fail(const std::string& why) {
  failure = why;
  TORCH_CHECK(false, why);
}

Channel& channel_of(int64_t number) {
  std::lock_guard<std::mutex> hold(registry_lock);
  TORCH_CHECK(number >= 0 && number < static_cast<int64_t>(channels.size()) && channels[number].base,
              "sapicore exchange: channel ", number, " is not open");
  return channels[number];
}

size_t segment_bytes(int64_t world, int64_t slot_bytes) {
  return world * sizeof(Mark) + 2 * world * slot_bytes;
}

// Whether process `pid` has ended: gone, or a zombie that its parent (torchrun) has not reaped yet.
bool ended(int64_t pid) {
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%lld/stat", static_cast<long long>(pid));
  FILE* file = std::fopen(path, "r");
  if (!file) return false;  // no /proc: the signal test alone
  char line[512];
  size_t got = std::fread(line, 1, sizeof line - 1, file);
  std::fclose(file);
  line[got] = 0;
  const char* close = std::strrchr(line, ')');  // "pid (name) state ..."
  return close && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X');
}

// Wait until `owner` has posted `target`, or raise.
void wait_for(Channel& ch, int64_t owner, uint64_t target) {
  Mark& mark = ch.marks()[owner];
  if (mark.posted.load(std::memory_order_acquire) >= target) return;
  auto began = std::chrono::steady_clock::now();
  auto checked = began;
  for (uint64_t spins = 0; mark.posted.load(std::memory_order_acquire) < target; ++spins) {
    if (spins < 2000) {
      SAPICORE_RELAX();
      continue;
    }
    sched_yield();
    if (spins % 256) continue;
    auto now = std::chrono::steady_clock::now();
    if (now - checked < std::chrono::milliseconds(5)) continue;
    checked = now;
    double seconds = std::chrono::duration<double>(now - began).count();
    if (ch.check_pids && ended(mark.pid))
      fail("rank " + std::to_string(owner) + " (process " + std::to_string(mark.pid) +
           ") exited during the run");
    if (seconds >= ch.timeout)
      fail("rank " + std::to_string(owner) + " did not reach exchange " + std::to_string(target) + " within " +
           std::to_string(static_cast<int64_t>(ch.timeout)) + " s (stuck, or much slower)");
  }
  ch.waited += std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
}

template <typename Word>
void scatter_nonzero(const Word* piece, int64_t count, Word* whole, int64_t first, int64_t stride) {
  // piece[i] -> whole[first + i * stride], skipping blocks of zeros (whole is zero-filled)
  constexpr int64_t block = 16;
  int64_t i = 0;
  for (; i + block <= count; i += block) {
    Word any = 0;
    for (int64_t k = 0; k < block; ++k) any |= piece[i + k];
    if (!any) continue;
    for (int64_t k = 0; k < block; ++k) whole[first + (i + k) * stride] = piece[i + k];
  }
  for (; i < count; ++i) whole[first + i * stride] = piece[i];
}

// The number of neurons of a segment (first neuron `start` of its population, `size` neurons) that
// `owner` holds, and the position in the segment of the first of them.
int64_t owned(int64_t start, int64_t size, int64_t owner, int64_t world, int64_t* first) {
  *first = ((owner - start) % world + world) % world;
  return *first < size ? (size - *first + world - 1) / world : 0;
}

template <typename Word>
void assemble(const Channel& ch, uint64_t bank, const std::vector<int64_t>& segments, int64_t rows, Word* whole,
              int64_t total) {
  const int64_t world = ch.world;
  for (int64_t owner = 0; owner < world; ++owner) {
    const Word* piece = reinterpret_cast<const Word*>(ch.slot(bank, owner));
    int64_t width = 0, first = 0;  // the owner's values per row
    for (size_t k = 0; k < segments.size(); k += 2) width += owned(segments[k], segments[k + 1], owner, world, &first);
    for (int64_t row = 0; row < rows; ++row) {
      const Word* values = piece + row * width;
      int64_t offset = 0;
      for (size_t k = 0; k < segments.size(); k += 2) {
        int64_t count = owned(segments[k], segments[k + 1], owner, world, &first);
        scatter_nonzero(values, count, whole + row * total, offset + first, world);
        values += count;
        offset += segments[k + 1];
      }
    }
  }
}

at::Tensor exchange_gather(const at::Tensor& local, int64_t number, at::IntArrayRef segment_list) {
  Channel& ch = channel_of(number);
  TORCH_CHECK(local.dim() == 1 || local.dim() == 2, "sapicore exchange: values (neurons,) or (rows, neurons), got ",
              local.sizes());
  TORCH_CHECK(segment_list.size() % 2 == 0, "sapicore exchange: segments are (start, size) pairs");
  std::vector<int64_t> segments(segment_list.begin(), segment_list.end());
  int64_t total = 0, mine = 0, first = 0;
  for (size_t k = 0; k < segments.size(); k += 2) {
    total += segments[k + 1];
    mine += owned(segments[k], segments[k + 1], ch.rank, ch.world, &first);
  }
  const int64_t rows = local.dim() == 2 ? local.size(0) : 1;
  TORCH_CHECK(local.size(-1) == mine, "sapicore exchange: rank ", ch.rank, " holds ", local.size(-1),
              " values per row, its share of the segments ", segment_list, " is ", mine);
  const int64_t item = local.element_size();
  TORCH_CHECK(item == 1 || item == 2 || item == 4 || item == 8, "sapicore exchange: unsupported dtype ",
              local.scalar_type());
  TORCH_CHECK(rows * mine * item <= ch.slot_bytes, "sapicore exchange: ", rows * mine * item,
              " bytes exceed the channel's slot of ", ch.slot_bytes);
  at::Tensor values = local.contiguous();
  const uint64_t bank = ch.count, target = ch.count + 1;
  std::memcpy(ch.slot(bank, ch.rank), values.data_ptr(), rows * mine * item);
  ch.marks()[ch.rank].posted.store(target, std::memory_order_release);
  ch.count = target;
  ch.received += rows * (total - mine) * item;
  at::Tensor whole = local.dim() == 2 ? at::zeros({rows, total}, local.options()) : at::zeros({total}, local.options());
  for (int64_t owner = 0; owner < ch.world; ++owner)
    if (owner != ch.rank) wait_for(ch, owner, target);
  void* out = whole.data_ptr();
  switch (item) {
    case 1: assemble(ch, bank, segments, rows, static_cast<uint8_t*>(out), total); break;
    case 2: assemble(ch, bank, segments, rows, static_cast<uint16_t*>(out), total); break;
    case 4: assemble(ch, bank, segments, rows, static_cast<uint32_t*>(out), total); break;
    default: assemble(ch, bank, segments, rows, static_cast<uint64_t*>(out), total); break;
  }
  return whole;
}

}  // namespace

extern "C" {

// Map segment `name` (creating it, zero-filled, when `create`), for `rank` of `world` with slots of
// `slot_bytes`; the channel's number, or -1 (sapicore_exchange_error says why).
int64_t sapicore_exchange_open(const char* name, int64_t rank, int64_t world, int64_t slot_bytes, double timeout,
                               int create) {
  if (world < 1 || rank < 0 || rank >= world || slot_bytes < 0) {
    last_error = "bad rank, world or slot size";
    return -1;
  }
  slot_bytes = (slot_bytes + 63) / 64 * 64;
  size_t bytes = segment_bytes(world, slot_bytes);
  int fd = shm_open(name, create ? (O_CREAT | O_EXCL | O_RDWR) : O_RDWR, 0600);
  if (fd < 0) {
    last_error = std::string("shm_open ") + name + ": " + std::strerror(errno);
    return -1;
  }
  // the memory is reserved now (posix_fallocate), so a full /dev/shm is an error here, not a SIGBUS
  // at the first exchange; where posix_fallocate is missing (macOS), the size is only set
#ifdef __linux__
  int reserved = create ? posix_fallocate(fd, 0, static_cast<off_t>(bytes)) : 0;
#else
  int reserved = create && ftruncate(fd, static_cast<off_t>(bytes)) != 0 ? errno : 0;
#endif
  if (reserved != 0) {
    last_error = std::string("cannot reserve ") + std::to_string(bytes >> 20) + " MiB of shared memory for " + name +
                 ": " + std::strerror(reserved);
    close(fd);
    shm_unlink(name);
    return -1;
  }
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) {
    last_error = std::string("mmap: ") + std::strerror(errno);
    return -1;
  }
  Channel ch;
  ch.base = static_cast<char*>(base);
  ch.bytes = bytes;
  ch.rank = rank;
  ch.world = world;
  ch.slot_bytes = slot_bytes;
  ch.timeout = timeout;
  ch.marks()[rank].pid = getpid();
  std::lock_guard<std::mutex> hold(registry_lock);
  for (size_t number = 0; number < channels.size(); ++number)
    if (!channels[number].base) {  // the lowest free number, so a process's first channel is always 0
      channels[number] = ch;
      return static_cast<int64_t>(number);
    }
  channels.push_back(ch);
  return static_cast<int64_t>(channels.size() - 1);
}

// Remove segment `name` (the mappings stay): 0, or -1.
int sapicore_exchange_unlink(const char* name) {
  if (shm_unlink(name) == 0) return 0;
  last_error = std::string("shm_unlink ") + name + ": " + std::strerror(errno);
  return -1;
}

// After every rank has opened the channel: 1 when every other rank's process is visible to this one
// (then a rank that dies is noticed at once), else 0 (then only the timeout applies).
int sapicore_exchange_check_pids(int64_t number) {
  Channel& ch = channel_of(number);
  ch.check_pids = true;
  for (int64_t owner = 0; owner < ch.world; ++owner) {
    int64_t pid = ch.marks()[owner].pid;
    if (pid <= 0 || (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)) ch.check_pids = false;
  }
  return ch.check_pids ? 1 : 0;
}

void sapicore_exchange_close(int64_t number) {
  std::lock_guard<std::mutex> hold(registry_lock);
  if (number < 0 || number >= static_cast<int64_t>(channels.size()) || !channels[number].base) return;
  munmap(channels[number].base, channels[number].bytes);
  channels[number] = Channel();
}

// exchanges made, seconds waited, bytes received
void sapicore_exchange_stats(int64_t number, double* out) {
  Channel& ch = channel_of(number);
  out[0] = static_cast<double>(ch.count);
  out[1] = ch.waited;
  out[2] = static_cast<double>(ch.received);
}

const char* sapicore_exchange_error() { return last_error.c_str(); }

// Why the latest exchange failed ("" if none did).
const char* sapicore_exchange_failure() { return failure.c_str(); }

AOTI_TORCH_EXPORT AOTITorchError aoti_torch_cpu_exchange_gather(AtenTensorHandle local, int64_t number,
                                                               const int64_t* segments, int64_t segments_len_,
                                                               AtenTensorHandle* out) {
  AOTI_TORCH_CONVERT_EXCEPTION_TO_ERROR_CODE({
    at::Tensor whole = exchange_gather(*torch::aot_inductor::tensor_handle_to_tensor_pointer(local), number,
                                       at::IntArrayRef(segments, segments_len_));
    *out = torch::aot_inductor::new_tensor_handle(std::move(whole));
  });
}

}  // extern "C"

TORCH_LIBRARY_FRAGMENT(sapicore, m) {
  m.def("exchange_gather(Tensor local, int channel, int[] segments) -> Tensor");
}

TORCH_LIBRARY_IMPL(sapicore, CPU, m) {
  m.impl("exchange_gather", &exchange_gather);
}

#endif  // POSIX
