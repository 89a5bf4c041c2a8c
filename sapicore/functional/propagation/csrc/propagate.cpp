// Event-driven spike propagation for sparse projections, on the CPU.
//
// sapicore::propagate(pending, spikes, targets, weights, delays, delay, step, first_row) -> new pending
//   pending (D, P) float      future synaptic input: row k acts at the steps equal to k mod D
//   spikes  (N,) float        this step's source output (0 where silent)
//   targets (N + 1, W) int32, or uint16 where P - 1 < 65,536: target neuron of each outgoing synapse
//                             (P - 1 for padding); a source's
//                             synapses come first and its padding after them: a source's scan stops at
//                             its first padding entry, so a source costs its out-degree, not W
//   weights (N + 1, W) float
//   delays  (N + 1, W) int8, int16 or int32: delay of each synapse in steps, or None to use `delay` for all
//   step    () int64          steps taken so far
//   first_row (N + 1,) int64 or None: source i's synapses fill the consecutive rows first_row[i] to
//                             first_row[i + 1] - 1 of tables of R + 1 rows (R = first_row[N]; the last
//                             row is padding), so rows can be much narrower than the widest source; None:
//                             row i is source i's
// It returns a copy of pending in which row step mod D (the input delivered this step) is cleared
// and every synapse of every source neuron with a non-zero output s has added w * s at row
// (step + 1 + delay) mod D, column target. The work is the number
// of spiking neurons times the out-degree, plus a scan of the N outputs; there is no limit on the
// number of spikes.
//
// sapicore::propagate_(pending, ...) does the same in place: pending (contiguous) is the output. A run
// that owns its state uses it, so no step copies the ring buffer (rows x targets values).
//
// sapicore::take_row_(pending, step) -> row: a copy of row step mod D (the input delivered this step),
// which it clears in pending. With it an in-place run never reads the ring buffer outside the two ops
// that change it, so a compiler keeps reads and writes in order.
//
// first_row has no default in the schemas: compiled graphs that call an op through the stable ABI
// (AOT Inductor, the C++ wrapper) pass only the arguments a call spelled out, and the dispatcher would
// read a missing trailing argument past their end.
//
// sapicore::propagate_lanes takes the same arguments with a leading lane axis L (step (L,)); a lane
// stride of 0 (an expanded, shared argument) is read without copying. vmap folds into it.
// sapicore::propagate_lanes_ and sapicore::take_row_lanes_ are the lanes forms of propagate_ and
// take_row_ (pending (L, D, P), each lane's rows contiguous): vmap runs the in-place ops through them.
//
// sapicore::events(records, first_record, interval) -> (times, neurons, found): the spike events of
// one chunk of several event records (each records x neurons values, counts of spikes, almost all
// zero; one call for every recorded population), in order. A non-zero value at record k and neuron j
// gives an event at time (first_record + k + 1) * interval (float64, ms) for neuron j (int64, flat
// index); a count above 1.5 gives round(count) events there. found[i]: how many events came from
// records[i] (they follow those of records[i - 1]).
//
// sapicore::keyed_poisson(mean, zero, step, neuron, seed, stream) -> one Poisson count per neuron, a
// fixed function of (seed, stream, neuron, step): PoissonSource's seeded draws (or (L, N): a row per
// lane, where a row of an expanded argument is read in place). mean (N,) float64,
// zero = exp(-mean) (computed by torch, so both ways of drawing share it to the last bit), step and
// neuron (N,) int64 (the neuron's number in the whole population). The uniform is the
// 32-bit hash of sapicore.functional.models.currents._key, (hash + 0.5) / 2^32, and the count the
// least k whose Poisson CDF reaches it, summed in the order of the torch implementation, at most
// floor(mean + 12 sqrt(mean) + 12) - 1 (the tail beyond lies below 1e-16). Means above 100 are refused.
//
// sapicore::keyed_uniform_rows(index, counts, seed, stream) -> uniforms (float64): for each row r, counts[r]
// values, those of (index[r], 0), (index[r], 1), ..., (index[r], counts[r] - 1), one row after another;
// value (i, j) is sapicore.functional.models.currents.keyed_uniform(seed, i, j, stream). index and counts
// (R,) int64. Connectivity keyed by target neuron draws a target's synapses with it (row i: target i,
// j: its j-th synapse), on whichever process holds the target.
//
// sapicore::keyed_sources(index, counts, seed, stream, sources) -> int64: min(floor(u * sources), sources - 1)
// of those uniforms u: the sources of a target's synapses in connectivity.fixed_total_number.
//
// sapicore::keyed_gaps(index, seed, stream, available, log_q) -> (counts, positions): for each row r, the
// successes among `available` Bernoulli trials of probability p = 1 - exp(log_q), found by geometric gaps:
// with u_j the uniforms of (index[r], j), the next success lies floor(ln(u_j) / log_q) trials after the
// last (positions ascending, each row's after the previous row's; counts[r] of row r). The rows of
// connectivity.fixed_probability.
//
// sapicore::keyed_distinct(index, count, seed, stream, available, complement) -> positions (R * count'):
// for each row, the first `count` distinct values of min(floor(u_j * available), available - 1) in the
// order of j, ascending; with complement, the available - count values not among them (count' is count or
// available - count). The rows of connectivity.fixed_in_degree.
//
// sapicore::stable_order(keys, bins) -> order (int64): the permutation that sorts keys (int32 or int64, in
// [0, bins)) ascending and keeps equal keys in their order (a counting sort: two passes, 6 times faster
// than a stable torch.sort of the 4 million synapses of a piece).
//
// sapicore::poisson(mean) -> one Poisson count per entry of mean (>= 0), as torch.poisson, but several
// times faster for the small means of spike counts per step: each call seeds a xoshiro256** stream
// (Blackman & Vigna) with one draw from torch's default CPU generator (so torch.manual_seed makes runs
// repeatable), then draws by sequential inversion of the CDF below a mean of 10 (about mean + 1
// comparisons per draw; eight neighbours at a time in AVX-512 lanes, the same counts: 7 ns a draw at the
// microcircuit's background means against 30 one at a time) and by Hormann's transformed rejection
// (PTRS, 1993) above.
#include <torch/extension.h>
#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/inductor/aoti_torch/utils.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#define SAPICORE_AVX512 1  // functions built for AVX-512, called where __builtin_cpu_supports says so
#endif
#include <cstring>
#include <mutex>
#include <tuple>
#include <vector>

namespace {

// The first byte offset >= i (or n) not inside a 64-byte block whose bits are all zero. Built for
// several instruction sets where the compiler can (one or two vector loads a block with AVX2 or
// AVX-512, four with the baseline SSE2) and picked once, when the library loads, for this CPU.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
int64_t skip_zero_bytes(const unsigned char* bytes, int64_t i, int64_t n) {
  while (i + 64 <= n) {
    uint64_t words[8];
    std::memcpy(words, bytes + i, 64);
    if ((words[0] | words[1] | words[2] | words[3] | words[4] | words[5] | words[6] | words[7]) != 0) break;
    i += 64;
  }
  return i;
}

// The first index >= i (or n) of a non-zero value before the next block boundary (a multiple of 64
// bytes from values), or else of a 64-byte block whose bits are not all zero. Most outputs of a step
// are exactly 0, so whole blocks are skipped at once, and a caller walking through a block with a
// spike in it compares values one by one; callers still compare each value they stop at.
template <typename T>
int64_t skip_zero_blocks(const T* values, int64_t i, int64_t n) {
  constexpr int64_t block = 64 / sizeof(T);
  for (; i < n && i % block != 0; ++i) {
    if (values[i] != T(0)) return i;
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(values);
  return skip_zero_bytes(bytes, i * int64_t(sizeof(T)), n * int64_t(sizeof(T))) / int64_t(sizeof(T));
}

// Raised from the loops over synapses: kept out of line, so that building the message does not
// cost the loops registers (a check inline spilled the target to the stack at every synapse).
[[noreturn]] __attribute__((noinline, cold)) void out_of_range(int64_t target, int64_t delay) {
  TORCH_CHECK(false, "sapicore::propagate: target ", target, " or delay ", delay, " out of range");
  __builtin_unreachable();
}

// Asks for the first `bytes` (at most 2 KiB) of a table row to be brought into cache.
inline void prefetch_row(const void* row, int64_t bytes) {
  const char* p = static_cast<const char*>(row);
  for (int64_t offset = 0; offset < std::min<int64_t>(bytes, 2048); offset += 64) __builtin_prefetch(p + offset, 0, 3);
}

template <typename T, typename D, typename G>
void add_events(T* out, int64_t length, int64_t columns, const T* spikes, int64_t sources, const G* targets,
                const T* weights, const D* delays, int64_t delay, int64_t width, int64_t step,
                const int64_t* first_row, int64_t table_rows) {
  TORCH_CHECK(step >= 0 && delay >= 0, "sapicore::propagate: step and delay must be >= 0");
  std::memset(out + (step % length) * columns, 0, columns * sizeof(T));  // delivered this step
  const int64_t first = (step + 1) % length;  // the row of delay 0
  T* same_row = out + ((first + delay) % length) * columns;
  // The sources that fired, first: a source's table rows lie anywhere in tables of many megabytes,
  // so each is fetched from memory while the rows of the sources before it are being added
  // (without that, adding waited for memory most of the time at COBA-40k).
  struct Fired {
    int64_t source, start, slots;  // the source and its slots: one row, or its consecutive rows
  };
  thread_local std::vector<Fired> firing;
  firing.clear();
  for (int64_t i = skip_zero_blocks(spikes, 0, sources); i < sources; i = skip_zero_blocks(spikes, i + 1, sources)) {
    if (spikes[i] == T(0)) continue;
    if (first_row == nullptr) {
      firing.push_back({i, i * width, width});
      continue;
    }
    TORCH_CHECK(0 <= first_row[i] && first_row[i] <= first_row[i + 1] && first_row[i + 1] < table_rows,
                "sapicore::propagate: first_row must ascend within the table's rows");
    firing.push_back({i, first_row[i] * width, (first_row[i + 1] - first_row[i]) * width});
  }
  const auto fetch = [&](size_t k) {
    if (k >= firing.size()) return;
    const Fired& f = firing[k];
    prefetch_row(targets + f.start, f.slots * int64_t(sizeof(G)));
    prefetch_row(weights + f.start, f.slots * int64_t(sizeof(T)));
    if (delays != nullptr) prefetch_row(delays + f.start, f.slots * int64_t(sizeof(D)));
  };
  fetch(0);
  fetch(1);
  for (size_t k = 0; k < firing.size(); ++k) {
    fetch(k + 2);
    const T value = spikes[firing[k].source];
    const int64_t start = firing[k].start, slots = firing[k].slots;
    const G* row_targets = targets + start;
    const T* row_weights = weights + start;
    if (delays == nullptr) {
      for (int64_t j = 0; j < slots; ++j) {
        const int64_t target = row_targets[j];
        if (static_cast<uint64_t>(target) >= static_cast<uint64_t>(columns)) out_of_range(target, 0);
        if (target == columns - 1) break;  // the row's padding
        same_row[target] += row_weights[j] * value;
      }
      continue;
    }
    const D* row_delays = delays + start;
    for (int64_t j = 0; j < slots; ++j) {
      const int64_t target = row_targets[j], d = row_delays[j];
      if (static_cast<uint64_t>(target) >= static_cast<uint64_t>(columns) ||
          static_cast<uint64_t>(d) >= static_cast<uint64_t>(length))
        out_of_range(target, d);
      if (target == columns - 1) break;  // the row's padding
      const int64_t row = first + d < length ? first + d : first + d - length;  // (step + 1 + d) mod length
      out[row * columns + target] += row_weights[j] * value;
    }
  }
}

// The output buffer: a contiguous copy of pending without the dispatcher's copy kernel (this runs
// every step), or uninitialised when pending has one row per lane: add_events clears the row it
// delivers, lane by lane, while that lane's row is in cache.
at::Tensor output_for(const at::Tensor& pending, int64_t row_dim) {
  if (pending.size(row_dim) == 1) return at::empty(pending.sizes(), pending.options());
  if (!pending.is_contiguous()) return pending.contiguous().clone();
  at::Tensor out = at::empty(pending.sizes(), pending.options());
  std::memcpy(out.data_ptr(), pending.data_ptr(), pending.nbytes());
  return out;
}

// Inner (non-lane) dimensions must be contiguous; the lane stride may be anything, 0 included.
at::Tensor inner_contiguous(const at::Tensor& t) {
  int64_t expected = 1;
  for (int64_t dim = t.dim() - 1; dim >= 1; --dim) {
    if (t.size(dim) != 1 && t.stride(dim) != expected) return t.contiguous();
    expected *= t.size(dim);
  }
  return t;
}

void check(const at::Tensor& pending, const at::Tensor& spikes, const at::Tensor& targets, const at::Tensor& weights,
           const c10::optional<at::Tensor>& delays, const at::Tensor& step, const c10::optional<at::Tensor>& first_row,
           int64_t lanes) {
  const int64_t extra = lanes < 0 ? 0 : 1;
  TORCH_CHECK(pending.dim() == 2 + extra && spikes.dim() == 1 + extra && targets.dim() == 2 + extra &&
                  weights.dim() == 2 + extra && step.dim() == extra,
              "sapicore::propagate: expected pending (D, P), spikes (N,), targets and weights (N + 1, W), step ()",
              extra ? " after a leading lane axis" : "");
  TORCH_CHECK(pending.size(extra) >= 1, "sapicore::propagate: pending needs at least one row (max_delay + 1)");
  if (first_row) {
    TORCH_CHECK(first_row->dim() == 1 + extra && first_row->size(extra) == spikes.size(extra) + 1 &&
                    first_row->scalar_type() == at::kLong && first_row->device().is_cpu(),
                "sapicore::propagate: first_row must be an int64 CPU tensor (N + 1,) for spikes (N,)");
    TORCH_CHECK(targets.size(extra) >= 1 && weights.sizes() == targets.sizes(),
                "sapicore::propagate: targets and weights must be (R + 1, W) for first_row[N] = R");
  } else {
    TORCH_CHECK(targets.size(extra) == spikes.size(extra) + 1 && weights.sizes() == targets.sizes(),
                "sapicore::propagate: targets and weights must be (N + 1, W) for spikes (N,)");
  }
  TORCH_CHECK(!delays || delays->sizes() == targets.sizes(), "sapicore::propagate: delays must be shaped like targets");
  TORCH_CHECK(spikes.scalar_type() == pending.scalar_type() && weights.scalar_type() == pending.scalar_type(),
              "sapicore::propagate: pending, spikes and weights must share one floating dtype");
  TORCH_CHECK((targets.scalar_type() == at::kInt || targets.scalar_type() == at::kUInt16) &&
                  step.scalar_type() == at::kLong &&
                  (!delays || delays->scalar_type() == at::kChar || delays->scalar_type() == at::kShort ||
                   delays->scalar_type() == at::kInt),
              "sapicore::propagate: targets must be int32 or uint16, delays int8, int16 or int32, step int64");
  TORCH_CHECK(pending.device().is_cpu() && spikes.device().is_cpu() && targets.device().is_cpu() &&
                  weights.device().is_cpu() && step.device().is_cpu() && (!delays || delays->device().is_cpu()),
              "sapicore::propagate: CPU tensors only");
  if (extra) {
    TORCH_CHECK(spikes.size(0) == lanes && targets.size(0) == lanes && weights.size(0) == lanes &&
                    step.size(0) == lanes && (!delays || delays->size(0) == lanes) &&
                    (!first_row || first_row->size(0) == lanes),
                "sapicore::propagate_lanes: arguments disagree on the number of lanes");
  }
}

// Calls add_events for the floating dtype of `out`, the integer dtype of the delays (int8 in the
// table for delays below 128 steps, int16 below 32,768, int32 beyond) and that of the targets (uint16
// for target groups of fewer than 65,536 neurons, int32 beyond).
template <typename T, typename G, typename F>
void with_delay_type(const at::Tensor& delays, F&& body) {
  if (delays.defined() && delays.scalar_type() == at::kInt) {
    body(T(0), int32_t(0), G(0));
  } else if (delays.defined() && delays.scalar_type() == at::kChar) {
    body(T(0), int8_t(0), G(0));
  } else {
    body(T(0), int16_t(0), G(0));
  }
}

template <typename T, typename F>
void with_target_type(const at::Tensor& targets, const at::Tensor& delays, F&& body) {
  if (targets.scalar_type() == at::kUInt16) {
    with_delay_type<T, uint16_t>(delays, body);
  } else {
    with_delay_type<T, int32_t>(delays, body);
  }
}

template <typename F>
void dispatch(const at::Tensor& out, const at::Tensor& targets, const at::Tensor& delays, F&& body) {
  if (out.scalar_type() == at::kDouble) {
    with_target_type<double>(targets, delays, body);
  } else {
    TORCH_CHECK(out.scalar_type() == at::kFloat, "sapicore::propagate: float32 or float64 tensors only");
    with_target_type<float>(targets, delays, body);
  }
}

// Adds one step's events into `out` (contiguous, D x P): the body of propagate and propagate_.
void add_step(at::Tensor& out, const at::Tensor& spikes, const at::Tensor& targets, const at::Tensor& weights,
              const c10::optional<at::Tensor>& delays, int64_t delay, const at::Tensor& step,
              const c10::optional<at::Tensor>& first_row) {
  const at::Tensor s = spikes.contiguous(), tg = targets.contiguous(), w = weights.contiguous();
  const at::Tensor d = delays ? delays->contiguous() : at::Tensor();
  const at::Tensor f = first_row ? first_row->contiguous() : at::Tensor();
  const int64_t now = *step.data_ptr<int64_t>();
  dispatch(out, tg, d, [&](auto t, auto k, auto g) {
    using T = decltype(t);
    using D = decltype(k);
    using G = decltype(g);
    add_events<T, D, G>(out.data_ptr<T>(), out.size(0), out.size(1), s.data_ptr<T>(), s.size(0),
                        static_cast<const G*>(tg.const_data_ptr()), w.data_ptr<T>(),
                        d.defined() ? d.data_ptr<D>() : nullptr, delay, tg.size(1), now,
                        f.defined() ? f.data_ptr<int64_t>() : nullptr, tg.size(0));
  });
}

at::Tensor propagate(const at::Tensor& pending, const at::Tensor& spikes, const at::Tensor& targets,
                     const at::Tensor& weights, const c10::optional<at::Tensor>& delays, int64_t delay,
                     const at::Tensor& step, const c10::optional<at::Tensor>& first_row) {
  check(pending, spikes, targets, weights, delays, step, first_row, -1);
  at::Tensor out = output_for(pending, 0);
  add_step(out, spikes, targets, weights, delays, delay, step, first_row);
  return out;
}

void propagate_(at::Tensor& pending, const at::Tensor& spikes, const at::Tensor& targets, const at::Tensor& weights,
                const c10::optional<at::Tensor>& delays, int64_t delay, const at::Tensor& step,
                const c10::optional<at::Tensor>& first_row) {
  check(pending, spikes, targets, weights, delays, step, first_row, -1);
  TORCH_CHECK(pending.is_contiguous(), "sapicore::propagate_: pending must be contiguous");
  add_step(pending, spikes, targets, weights, delays, delay, step, first_row);
}

at::Tensor take_row_(at::Tensor& pending, const at::Tensor& step) {
  TORCH_CHECK(pending.dim() == 2 && pending.size(0) >= 1 && pending.is_contiguous() && pending.device().is_cpu(),
              "sapicore::take_row_: pending must be a contiguous CPU tensor (D, P)");
  TORCH_CHECK(step.dim() == 0 && step.scalar_type() == at::kLong && step.device().is_cpu(),
              "sapicore::take_row_: step must be a 0-d int64 CPU tensor");
  const int64_t now = *step.data_ptr<int64_t>();
  TORCH_CHECK(now >= 0, "sapicore::take_row_: step must be >= 0");
  at::Tensor row = pending.select(0, now % pending.size(0));
  at::Tensor taken = row.clone();
  row.zero_();
  return taken;
}

// Adds one step's events of every lane into `out` (L x D x P, each lane's rows contiguous): the body
// of propagate_lanes and propagate_lanes_.
void add_lanes(at::Tensor& out, const at::Tensor& spikes, const at::Tensor& targets, const at::Tensor& weights,
               const c10::optional<at::Tensor>& delays, int64_t delay, const at::Tensor& step,
               const c10::optional<at::Tensor>& first_row) {
  const int64_t lanes = out.size(0);
  const at::Tensor s = inner_contiguous(spikes), tg = inner_contiguous(targets), w = inner_contiguous(weights);
  const at::Tensor d = delays ? inner_contiguous(*delays) : at::Tensor();
  const at::Tensor f = first_row ? inner_contiguous(*first_row) : at::Tensor();
  dispatch(out, tg, d, [&](auto t, auto k, auto g) {
    using T = decltype(t);
    using D = decltype(k);
    using G = decltype(g);
    for (int64_t lane = 0; lane < lanes; ++lane) {
      add_events<T, D, G>(out.data_ptr<T>() + lane * out.stride(0), out.size(1), out.size(2),
                          s.data_ptr<T>() + lane * s.stride(0), s.size(1),
                          static_cast<const G*>(tg.const_data_ptr()) + lane * tg.stride(0),
                          w.data_ptr<T>() + lane * w.stride(0),
                          d.defined() ? d.data_ptr<D>() + lane * d.stride(0) : nullptr, delay, tg.size(2),
                          step.data_ptr<int64_t>()[lane * step.stride(0)],
                          f.defined() ? f.data_ptr<int64_t>() + lane * f.stride(0) : nullptr, tg.size(1));
    }
  });
}

at::Tensor propagate_lanes(const at::Tensor& pending, const at::Tensor& spikes, const at::Tensor& targets,
                           const at::Tensor& weights, const c10::optional<at::Tensor>& delays, int64_t delay,
                           const at::Tensor& step, const c10::optional<at::Tensor>& first_row) {
  check(pending, spikes, targets, weights, delays, step, first_row, pending.dim() > 0 ? pending.size(0) : 0);
  at::Tensor out = output_for(pending, 1);
  add_lanes(out, spikes, targets, weights, delays, delay, step, first_row);
  return out;
}

// Each lane's rows contiguous and lanes apart (a lane stride of at least one lane's values): the
// layout in which propagate_lanes_ and take_row_lanes_ change every lane's ring buffer in place.
bool lanes_apart(const at::Tensor& pending) {
  return pending.dim() == 3 && pending.stride(2) == 1 && pending.stride(1) == pending.size(2) &&
         (pending.size(0) == 1 || pending.stride(0) >= pending.size(1) * pending.size(2));
}

void propagate_lanes_(at::Tensor& pending, const at::Tensor& spikes, const at::Tensor& targets,
                      const at::Tensor& weights, const c10::optional<at::Tensor>& delays, int64_t delay,
                      const at::Tensor& step, const c10::optional<at::Tensor>& first_row) {
  check(pending, spikes, targets, weights, delays, step, first_row, pending.dim() > 0 ? pending.size(0) : 0);
  TORCH_CHECK(lanes_apart(pending), "sapicore::propagate_lanes_: each lane of pending must be contiguous, lanes apart");
  add_lanes(pending, spikes, targets, weights, delays, delay, step, first_row);
}

at::Tensor take_row_lanes_(at::Tensor& pending, const at::Tensor& step) {
  TORCH_CHECK(lanes_apart(pending) && pending.size(1) >= 1 && pending.device().is_cpu(),
              "sapicore::take_row_lanes_: pending must be a CPU tensor (L, D, P), each lane contiguous, lanes apart");
  TORCH_CHECK(step.dim() == 1 && step.size(0) == pending.size(0) && step.scalar_type() == at::kLong &&
                  step.device().is_cpu(),
              "sapicore::take_row_lanes_: step must be an int64 CPU tensor (L,)");
  const int64_t lanes = pending.size(0), rows = pending.size(1), bytes = pending.size(2) * pending.element_size();
  at::Tensor taken = at::empty({lanes, pending.size(2)}, pending.options());
  char* base = static_cast<char*>(pending.data_ptr());
  char* into = static_cast<char*>(taken.data_ptr());
  for (int64_t lane = 0; lane < lanes; ++lane) {  // plain copies: this runs every step, for every lane
    const int64_t now = step.data_ptr<int64_t>()[lane * step.stride(0)];
    TORCH_CHECK(now >= 0, "sapicore::take_row_lanes_: step must be >= 0");
    char* row = base + (lane * pending.stride(0) + (now % rows) * pending.stride(1)) * pending.element_size();
    std::memcpy(into + lane * bytes, row, bytes);
    std::memset(row, 0, bytes);  // all-zero bytes: 0.0 in float32 and float64
  }
  return taken;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> events(at::TensorList records, int64_t first_record, double interval) {
  std::vector<double> times;
  std::vector<int64_t> neurons;
  at::Tensor found = at::empty({static_cast<int64_t>(records.size())}, at::TensorOptions().dtype(at::kLong));
  for (size_t r = 0; r < records.size(); ++r) {
    TORCH_CHECK(records[r].device().is_cpu(), "sapicore::events: CPU tensors only");
    TORCH_CHECK(records[r].dim() >= 1, "sapicore::events: records need a leading record axis");
    const at::Tensor v = records[r].contiguous();
    const int64_t n = v.numel();
    const int64_t width = v.size(0) > 0 ? n / v.size(0) : 1;
    const size_t before = times.size();
    if (n > 0) {
      AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "sapicore::events", [&] {
        const scalar_t* p = v.data_ptr<scalar_t>();
        for (int64_t i = skip_zero_blocks(p, 0, n); i < n; i = skip_zero_blocks(p, i + 1, n)) {
          const scalar_t value = p[i];
          if (value == scalar_t(0) || value != value) continue;  // NaN: a quarantined lane's records
          const int64_t count = value > scalar_t(1.5) ? static_cast<int64_t>(std::nearbyint(value)) : 1;
          const double time = static_cast<double>(i / width + first_record + 1) * interval;
          for (int64_t c = 0; c < count; ++c) {
            times.push_back(time);
            neurons.push_back(i % width);
          }
        }
      });
    }
    found.data_ptr<int64_t>()[r] = static_cast<int64_t>(times.size() - before);
  }
  const int64_t total = static_cast<int64_t>(times.size());
  at::Tensor out_times = at::empty({total}, at::TensorOptions().dtype(at::kDouble));
  at::Tensor out_neurons = at::empty({total}, at::TensorOptions().dtype(at::kLong));
  if (total) {
    std::memcpy(out_times.data_ptr<double>(), times.data(), total * sizeof(double));
    std::memcpy(out_neurons.data_ptr<int64_t>(), neurons.data(), total * sizeof(int64_t));
  }
  return {out_times, out_neurons, found};
}

// xoshiro256**: a small, fast generator of 64-bit words, seeded through splitmix64.
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    for (uint64_t& word : state_) {
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31);
    }
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9, t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  uint64_t state_[4];
};

// One Poisson draw of mean lam >= 0 whose exp(-lam) is `zero` (the probability of 0).
double poisson_draw(double lam, double zero, Xoshiro256& random) {
  if (lam <= 0.0) return 0.0;
  if (lam < 10.0) {  // inversion: the first k whose CDF reaches u
    const double u = random.uniform();
    double term = zero, cdf = term;
    int64_t k = 0;
    while (u > cdf && k < 1000) {  // the cap only guards against rounding when u is within 1e-16 of 1
      ++k;
      term *= lam / static_cast<double>(k);
      cdf += term;
    }
    return static_cast<double>(k);
  }
  // Hormann (1993), "The transformed rejection method for generating Poisson random variables"
  const double root = std::sqrt(lam), log_lam = std::log(lam);
  const double b = 0.931 + 2.53 * root, a = -0.059 + 0.02483 * b;
  const double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), v_r = 0.9277 - 3.6224 / (b - 2.0);
  while (true) {
    const double u = random.uniform() - 0.5, v = random.uniform();
    const double us = 0.5 - std::fabs(u);
    const double k = std::floor((2.0 * a / us + b) * u + lam + 0.43);
    if (us >= 0.07 && v <= v_r) return k;
    if (k < 0.0 || (us < 0.013 && v > us)) continue;
    if (std::log(v) + std::log(inv_alpha) - std::log(a / (us * us) + b) <= -lam + k * log_lam - std::lgamma(k + 1.0)) {
      return k;
    }
  }
}

#ifdef SAPICORE_AVX512
// The inversion of poisson_draw for eight means in (0, 10) at a time, given their uniforms: each lane
// adds terms until its own CDF reaches its uniform, so the divisions of eight draws overlap. A lane does
// one draw's operations in the same order, so the counts are those of poisson_draw to the last bit.
__attribute__((target("avx512f"))) void inversion_lanes(const double* lam, const double* zero, const double* u,
                                                         double* count) {
  const __m512d mu = _mm512_loadu_pd(lam), target = _mm512_loadu_pd(u), one = _mm512_set1_pd(1.0);
  __m512d term = _mm512_loadu_pd(zero), cdf = term, found = _mm512_setzero_pd();
  for (double k = 1.0; k <= 1000.0; k += 1.0) {
    const __mmask8 go = _mm512_cmp_pd_mask(target, cdf, _CMP_GT_OQ);
    if (!go) break;
    const __m512d next = _mm512_mul_pd(term, _mm512_div_pd(mu, _mm512_set1_pd(k)));
    term = _mm512_mask_mov_pd(term, go, next);
    cdf = _mm512_mask_add_pd(cdf, go, cdf, next);
    found = _mm512_mask_add_pd(found, go, found, one);
  }
  _mm512_storeu_pd(count, found);
}
#endif

// poisson_draw for n means in a row (draws 8 at a time in AVX-512 lanes where 8 neighbours all take
// the inversion; the uniforms are taken in the same order, so the counts are the same either way)
template <typename scalar_t>
void poisson_draws(const scalar_t* in, int64_t n, Xoshiro256& random, scalar_t* result) {
#ifdef SAPICORE_AVX512
  static const bool avx512 = __builtin_cpu_supports("avx512f");
#endif
  double lam = -1.0, zero = 0.0;  // neighbours often share a mean: exp(-lam) once per run of them
  for (int64_t first = 0; first < n; first += 8) {
    const int64_t last = std::min(first + 8, n);
    double mean[8], term0[8], u[8], count[8];
    bool lanes = last - first == 8;
    for (int64_t i = first; i < last; ++i) {
      TORCH_CHECK(in[i] >= 0, "sapicore::poisson: means must be >= 0, got ", in[i]);
      if (static_cast<double>(in[i]) != lam) {
        lam = static_cast<double>(in[i]);
        zero = std::exp(-lam);
      }
      mean[i - first] = lam;
      term0[i - first] = zero;
      lanes = lanes && lam > 0.0 && lam < 10.0;
    }
#ifdef SAPICORE_AVX512
    if (lanes && avx512) {
      for (int k = 0; k < 8; ++k) u[k] = random.uniform();
      inversion_lanes(mean, term0, u, count);
      for (int k = 0; k < 8; ++k) result[first + k] = static_cast<scalar_t>(count[k]);
      continue;
    }
#endif
    for (int64_t i = first; i < last; ++i)
      result[i] = static_cast<scalar_t>(poisson_draw(mean[i - first], term0[i - first], random));
  }
}

at::Tensor poisson(const at::Tensor& mean) {
  TORCH_CHECK(mean.device().is_cpu() && (mean.scalar_type() == at::kFloat || mean.scalar_type() == at::kDouble),
              "sapicore::poisson: a float32 or float64 CPU tensor of means");
  const at::Tensor m = mean.contiguous();
  at::Tensor out = at::empty_like(m);
  auto* generator = at::get_generator_or_default<at::CPUGeneratorImpl>(c10::nullopt, at::detail::getDefaultCPUGenerator());
  uint64_t seed;
  {
    std::lock_guard<std::mutex> lock(generator->mutex_);
    seed = generator->random64();
  }
  Xoshiro256 random(seed);
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "sapicore::poisson", [&] {
    poisson_draws(m.data_ptr<scalar_t>(), m.numel(), random, out.data_ptr<scalar_t>());
  });
  return out;
}

// sapicore.functional.models.currents._mix: two multiply-xorshift rounds on 32-bit values
constexpr int64_t kMask = (int64_t(1) << 32) - 1;
constexpr int64_t kMultiplier = 0x45D9F3B;

int64_t mix(int64_t x) {
  x = ((x ^ (x >> 16)) * kMultiplier) & kMask;
  x = ((x ^ (x >> 16)) * kMultiplier) & kMask;
  return x ^ (x >> 16);
}

// The base of the keyed uniforms of (seed, stream), as sapicore.functional.models.currents._key's.
inline int64_t stream_base(int64_t seed, int64_t stream) { return (seed * 0x2545F491 + stream * 0x9E3779B) & kMask; }

// The uniform of neuron `neuron` at counter `step` (see keyed_poisson).
inline double keyed_uniform(int64_t neuron, int64_t step, int64_t base) {
  const int64_t key = mix((((neuron * 0x27D4EB2F) & kMask) ^ mix(step ^ base)) & kMask);
  return (static_cast<double>(key) + 0.5) * 0x1.0p-32;
}

// The least k whose Poisson CDF (terms summed from exp(-lam) = term0, each the previous times lam / k)
// reaches uniform u, below floor(lam + 12 sqrt(lam) + 12): one neuron.
inline double keyed_count(double u, double lam, double term0) {
  const int64_t last = static_cast<int64_t>(lam + 12.0 * std::sqrt(lam) + 12.0);
  double term = term0, cdf = term0, found = 0.0;
  for (int64_t k = 1; k < last && cdf < u; ++k) {
    found += 1.0;
    term = term * lam / static_cast<double>(k);
    cdf = cdf + term;
  }
  return found;
}

void keyed_counts_scalar(const double* lam, const double* term0, const int64_t* steps, const int64_t* neurons,
                         int64_t base, int64_t first, int64_t n, double* count) {
  for (int64_t i = first; i < n; ++i) count[i] = keyed_count(keyed_uniform(neurons[i], steps[i], base), lam[i], term0[i]);
}

#ifdef SAPICORE_AVX512
// keyed_count for eight neurons at a time in the lanes of an AVX-512 register, each lane adding
// terms until its own CDF is reached, so that the divisions of eight neurons overlap instead of
// waiting on each other (2.5 times faster at the means of the microcircuit's background). A lane
// does one neuron's operations in the same order, so the counts are the same to the last bit.
__attribute__((target("avx512f"))) inline __m512i mask_lanes() { return _mm512_set1_epi64(kMask); }

__attribute__((target("avx512f"))) inline __m512i mix_lanes(__m512i x) {
  const __m512i multiplier = _mm512_set1_epi64(kMultiplier);
  x = _mm512_and_si512(_mm512_mul_epu32(_mm512_xor_si512(x, _mm512_srli_epi64(x, 16)), multiplier), mask_lanes());
  x = _mm512_and_si512(_mm512_mul_epu32(_mm512_xor_si512(x, _mm512_srli_epi64(x, 16)), multiplier), mask_lanes());
  return _mm512_xor_si512(x, _mm512_srli_epi64(x, 16));
}

// keyed_uniform in lanes: the products of 32-bit values (_mm512_mul_epu32) have the low 32 bits of the
// scalar code's, which is all that the masks keep
__attribute__((target("avx512f"))) inline __m512d uniform_lanes(__m512i neuron, __m512i step, int64_t base) {
  const __m512i mixed = mix_lanes(_mm512_xor_si512(step, _mm512_set1_epi64(base)));
  const __m512i spread = _mm512_and_si512(_mm512_mul_epu32(neuron, _mm512_set1_epi64(0x27D4EB2F)), mask_lanes());
  const __m512i key = mix_lanes(_mm512_and_si512(_mm512_xor_si512(spread, mixed), mask_lanes()));
  return _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepu32_pd(_mm512_cvtepi64_epi32(key)), _mm512_set1_pd(0.5)),
                       _mm512_set1_pd(0x1.0p-32));
}

__attribute__((target("avx512f"))) void keyed_counts_avx512(const double* lam, const double* term0,
                                                             const int64_t* steps, const int64_t* neurons,
                                                             int64_t base, int64_t n, double* count) {
  int64_t first = 0;
  for (; first + 8 <= n; first += 8) {
    const __m512d u = uniform_lanes(_mm512_loadu_si512(neurons + first), _mm512_loadu_si512(steps + first), base);
    const __m512d mu = _mm512_loadu_pd(lam + first);
    const __m512d bound = _mm512_add_pd(_mm512_add_pd(mu, _mm512_mul_pd(_mm512_set1_pd(12.0), _mm512_sqrt_pd(mu))),
                                        _mm512_set1_pd(12.0));
    const __m512d last = _mm512_roundscale_pd(bound, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);  // as the int64 cast
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d term = _mm512_loadu_pd(term0 + first), cdf = term, found = _mm512_setzero_pd();
    for (double k = 1.0;; k += 1.0) {
      const __m512d at = _mm512_set1_pd(k);
      const __mmask8 go = _mm512_cmp_pd_mask(at, last, _CMP_LT_OQ) & _mm512_cmp_pd_mask(cdf, u, _CMP_LT_OQ);
      if (!go) break;
      const __m512d next = _mm512_div_pd(_mm512_mul_pd(term, mu), at);
      term = _mm512_mask_mov_pd(term, go, next);
      cdf = _mm512_mask_add_pd(cdf, go, cdf, next);
      found = _mm512_mask_add_pd(found, go, found, one);
    }
    _mm512_storeu_pd(count + first, found);
  }
  keyed_counts_scalar(lam, term0, steps, neurons, base, first, n, count);
}
#endif

void keyed_counts(const double* lam, const double* term0, const int64_t* steps, const int64_t* neurons, int64_t base,
                  int64_t n, double* count) {
#ifdef SAPICORE_AVX512
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) return keyed_counts_avx512(lam, term0, steps, neurons, base, n, count);
#endif
  keyed_counts_scalar(lam, term0, steps, neurons, base, 0, n, count);
}

at::Tensor keyed_poisson(const at::Tensor& mean, const at::Tensor& zero, const at::Tensor& step,
                         const at::Tensor& neuron, int64_t seed, int64_t stream) {
  TORCH_CHECK((mean.dim() == 1 || mean.dim() == 2) && zero.sizes() == mean.sizes() && step.sizes() == mean.sizes() &&
                  neuron.sizes() == mean.sizes(),
              "sapicore::keyed_poisson: mean, zero, step and neuron must be one value per neuron (N,), or per lane "
              "and neuron (L, N)");
  TORCH_CHECK(mean.scalar_type() == at::kDouble && zero.scalar_type() == at::kDouble &&
                  step.scalar_type() == at::kLong && neuron.scalar_type() == at::kLong,
              "sapicore::keyed_poisson: mean and zero must be float64, step and neuron int64");
  TORCH_CHECK(mean.device().is_cpu() && zero.device().is_cpu() && step.device().is_cpu() && neuron.device().is_cpu(),
              "sapicore::keyed_poisson: CPU tensors only");
  const int64_t base = stream_base(seed, stream);
  at::Tensor out = at::empty(mean.sizes(), mean.options());
  const int64_t lanes = mean.dim() == 2 ? mean.size(0) : 1;
  for (int64_t lane = 0; lane < lanes; ++lane) {  // a lane's row of an expanded (shared) argument is not copied
    auto row = [&](const at::Tensor& t) { return (t.dim() == 2 ? t.select(0, lane) : t).contiguous(); };
    const at::Tensor m = row(mean), z = row(zero), counter = row(step), n = row(neuron);
    const double* lam = m.data_ptr<double>();
    for (int64_t i = 0; i < m.numel(); ++i)
      TORCH_CHECK(!(lam[i] > 100.0),
                  "a seeded PoissonSource draws at most 100 spikes per neuron and step on average, got ", lam[i],
                  "; use a smaller dt, or no seed");
    keyed_counts(lam, z.data_ptr<double>(), counter.data_ptr<int64_t>(), n.data_ptr<int64_t>(), base, m.numel(),
                 out.data_ptr<double>() + lane * m.numel());
  }
  return out;
}

void uniform_rows_scalar(int64_t row, int64_t first, int64_t length, int64_t base, double* u) {
  for (int64_t j = first; j < length; ++j) u[j] = keyed_uniform(row, j, base);
}

#ifdef SAPICORE_AVX512
// uniform_rows_scalar for eight counters at a time (the same values)
__attribute__((target("avx512f"))) void uniform_rows_avx512(int64_t row, int64_t length, int64_t base, double* u) {
  const __m512i neuron = _mm512_set1_epi64(row);
  __m512i j = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  int64_t first = 0;
  for (; first + 8 <= length; first += 8, j = _mm512_add_epi64(j, _mm512_set1_epi64(8)))
    _mm512_storeu_pd(u + first, uniform_lanes(neuron, j, base));
  uniform_rows_scalar(row, first, length, base, u);
}
#endif

void uniform_rows(const int64_t* rows, const int64_t* lengths, int64_t count, int64_t base, double* u) {
#ifdef SAPICORE_AVX512
  static const bool avx512 = __builtin_cpu_supports("avx512f");
#endif
  for (int64_t r = 0; r < count; u += lengths[r], ++r) {
#ifdef SAPICORE_AVX512
    if (avx512) {
      uniform_rows_avx512(rows[r], lengths[r], base, u);
      continue;
    }
#endif
    uniform_rows_scalar(rows[r], 0, lengths[r], base, u);
  }
}

at::Tensor keyed_uniform_rows(const at::Tensor& index, const at::Tensor& counts, int64_t seed, int64_t stream) {
  TORCH_CHECK(index.dim() == 1 && counts.sizes() == index.sizes() && index.scalar_type() == at::kLong &&
                  counts.scalar_type() == at::kLong && index.device().is_cpu() && counts.device().is_cpu(),
              "sapicore::keyed_uniform_rows: index and counts must be CPU int64 tensors of one length (R,)");
  const at::Tensor i = index.contiguous(), c = counts.contiguous();
  const int64_t* rows = i.data_ptr<int64_t>();
  const int64_t* lengths = c.data_ptr<int64_t>();
  int64_t total = 0;
  for (int64_t r = 0; r < i.numel(); ++r) {
    TORCH_CHECK(lengths[r] >= 0, "sapicore::keyed_uniform_rows: counts must be >= 0, got ", lengths[r]);
    total += lengths[r];
  }
  const int64_t base = stream_base(seed, stream);
  at::Tensor out = at::empty({total}, i.options().dtype(at::kDouble));
  uniform_rows(rows, lengths, i.numel(), base, out.data_ptr<double>());
  return out;
}

at::Tensor keyed_sources(const at::Tensor& index, const at::Tensor& counts, int64_t seed, int64_t stream,
                         int64_t sources) {
  at::Tensor u = keyed_uniform_rows(index, counts, seed, stream);
  TORCH_CHECK(sources >= 1 || u.numel() == 0, "sapicore::keyed_sources: sources must be >= 1, got ", sources);
  at::Tensor out = at::empty({u.numel()}, u.options().dtype(at::kLong));
  const double* value = u.data_ptr<double>();
  int64_t* source = out.data_ptr<int64_t>();
  for (int64_t k = 0; k < u.numel(); ++k)
    source[k] = std::min(static_cast<int64_t>(value[k] * static_cast<double>(sources)), sources - 1);
  return out;
}

const int64_t* checked_rows(const at::Tensor& index, const char* op) {
  TORCH_CHECK(index.dim() == 1 && index.scalar_type() == at::kLong && index.device().is_cpu() && index.is_contiguous(),
              "sapicore::", op, ": index must be a contiguous CPU int64 tensor (R,)");
  return index.data_ptr<int64_t>();
}

std::tuple<at::Tensor, at::Tensor> keyed_gaps(const at::Tensor& index, int64_t seed, int64_t stream, int64_t available,
                                              double log_q) {
  const int64_t* rows = checked_rows(index, "keyed_gaps");
  TORCH_CHECK(available >= 0 && log_q < 0.0, "sapicore::keyed_gaps: available must be >= 0 and log_q < 0, got ",
              available, " and ", log_q);
  const int64_t base = stream_base(seed, stream);
  at::Tensor counts = at::empty({index.numel()}, index.options());
  int64_t* count = counts.data_ptr<int64_t>();
  std::vector<int64_t> positions;
  for (int64_t r = 0; r < index.numel(); ++r) {
    const int64_t first = static_cast<int64_t>(positions.size());
    int64_t position = -1;
    for (int64_t j = 0;; ++j) {  // the next success lies floor(q) failures on, while that is below `available`
      const double q = std::log(keyed_uniform(rows[r], j, base)) / log_q;
      if (!(q < static_cast<double>(available - position - 1))) break;
      position += 1 + static_cast<int64_t>(q);
      positions.push_back(position);
    }
    count[r] = static_cast<int64_t>(positions.size()) - first;
  }
  at::Tensor out = at::empty({static_cast<int64_t>(positions.size())}, index.options());
  std::copy(positions.begin(), positions.end(), out.data_ptr<int64_t>());
  return {counts, out};
}

at::Tensor keyed_distinct(const at::Tensor& index, int64_t count, int64_t seed, int64_t stream, int64_t available,
                          bool complement) {
  const int64_t* rows = checked_rows(index, "keyed_distinct");
  TORCH_CHECK(count >= 0 && count <= available, "sapicore::keyed_distinct: count must lie in [0, available], got ",
              count, " of ", available);
  const int64_t base = stream_base(seed, stream);
  const int64_t width = complement ? available - count : count;
  at::Tensor out = at::empty({index.numel() * width}, index.options());
  int64_t* row_out = out.data_ptr<int64_t>();
  std::vector<uint8_t> taken(available, 0);
  std::vector<int64_t> chosen;
  chosen.reserve(count);
  for (int64_t r = 0; r < index.numel(); ++r, row_out += width) {
    chosen.clear();
    for (int64_t j = 0; static_cast<int64_t>(chosen.size()) < count; ++j) {
      const double u = keyed_uniform(rows[r], j, base);
      const int64_t value = std::min(static_cast<int64_t>(u * static_cast<double>(available)), available - 1);
      if (!taken[value]) {
        taken[value] = 1;
        chosen.push_back(value);
      }
    }
    if (complement) {
      for (int64_t value = 0, k = 0; value < available; ++value)
        if (!taken[value]) row_out[k++] = value;
    } else {
      std::sort(chosen.begin(), chosen.end());
      std::copy(chosen.begin(), chosen.end(), row_out);
    }
    for (const int64_t value : chosen) taken[value] = 0;
  }
  return out;
}

at::Tensor stable_order(const at::Tensor& keys, int64_t bins) {
  TORCH_CHECK(keys.dim() == 1 && (keys.scalar_type() == at::kInt || keys.scalar_type() == at::kLong) &&
                  keys.device().is_cpu() && bins >= 0,
              "sapicore::stable_order: keys must be a CPU int32 or int64 tensor (N,) and bins >= 0");
  const at::Tensor k = keys.contiguous();
  at::Tensor order = at::empty({k.numel()}, k.options().dtype(at::kLong));
  AT_DISPATCH_INDEX_TYPES(k.scalar_type(), "stable_order", [&] {
    const index_t* key = k.data_ptr<index_t>();
    std::vector<int64_t> next(bins + 1, 0);
    for (int64_t n = 0; n < k.numel(); ++n) {
      TORCH_CHECK(key[n] >= 0 && key[n] < bins, "sapicore::stable_order: key ", key[n], " outside [0, ", bins, ")");
      ++next[key[n] + 1];
    }
    for (int64_t b = 0; b < bins; ++b) next[b + 1] += next[b];
    int64_t* out = order.data_ptr<int64_t>();
    for (int64_t n = 0; n < k.numel(); ++n) out[next[key[n]]++] = n;
  });
  return order;
}

at::Tensor& tensor_of(AtenTensorHandle handle) {
  return *torch::aot_inductor::tensor_handle_to_tensor_pointer(handle);
}

c10::optional<at::Tensor> optional_of(AtenTensorHandle* handle) {
  return torch::aot_inductor::pointer_to_optional<at::Tensor>(handle);
}

}  // namespace

// C entry points of the ops for compiled graphs. AOT Inductor and inductor's C++ wrapper call a
// custom op through torch's proxy executor (its schema copied and every argument boxed, about a
// microsecond a call); given these functions (kernels.compile_options names them) they call them
// directly, as they call ATen's own C shims. Inductor names them aoti_torch_cpu_<op>; an optional
// tensor comes as a pointer to its handle (null: None), an output as a pointer to fill.
extern "C" {

AOTI_TORCH_EXPORT AOTITorchError aoti_torch_cpu_propagate(AtenTensorHandle pending, AtenTensorHandle spikes,
                                                          AtenTensorHandle targets, AtenTensorHandle weights,
                                                          AtenTensorHandle* delays, int64_t delay,
                                                          AtenTensorHandle step, AtenTensorHandle* first_row,
                                                          AtenTensorHandle* out) {
  AOTI_TORCH_CONVERT_EXCEPTION_TO_ERROR_CODE({
    *out = torch::aot_inductor::new_tensor_handle(propagate(tensor_of(pending), tensor_of(spikes), tensor_of(targets),
                                                            tensor_of(weights), optional_of(delays), delay,
                                                            tensor_of(step), optional_of(first_row)));
  });
}

AOTI_TORCH_EXPORT AOTITorchError aoti_torch_cpu_propagate_(AtenTensorHandle pending, AtenTensorHandle spikes,
                                                           AtenTensorHandle targets, AtenTensorHandle weights,
                                                           AtenTensorHandle* delays, int64_t delay,
                                                           AtenTensorHandle step, AtenTensorHandle* first_row,
                                                           AtenTensorHandle* /* no output: inductor passes null */) {
  AOTI_TORCH_CONVERT_EXCEPTION_TO_ERROR_CODE({
    propagate_(tensor_of(pending), tensor_of(spikes), tensor_of(targets), tensor_of(weights), optional_of(delays),
               delay, tensor_of(step), optional_of(first_row));
  });
}

AOTI_TORCH_EXPORT AOTITorchError aoti_torch_cpu_propagate_lanes(AtenTensorHandle pending, AtenTensorHandle spikes,
                                                                AtenTensorHandle targets, AtenTensorHandle weights,
                                                                AtenTensorHandle* delays, int64_t delay,
                                                                AtenTensorHandle step, AtenTensorHandle* first_row,
                                                                AtenTensorHandle* out) {
  AOTI_TORCH_CONVERT_EXCEPTION_TO_ERROR_CODE({
    *out = torch::aot_inductor::new_tensor_handle(propagate_lanes(tensor_of(pending), tensor_of(spikes),
                                                                  tensor_of(targets), tensor_of(weights),
                                                                  optional_of(delays), delay, tensor_of(step),
                                                                  optional_of(first_row)));
  });
}

AOTI_TORCH_EXPORT AOTITorchError aoti_torch_cpu_propagate_lanes_(AtenTensorHandle pending, AtenTensorHandle spikes,
                                                                 AtenTensorHandle targets, AtenTensorHandle weights,
                                                                 AtenTensorHandle* delays, int64_t delay,
                                                                 AtenTensorHandle step, AtenTensorHandle* first_row,
                                                                 AtenTensorHandle* /* no output */) {
  AOTI_TORCH_CONVERT_EXCEPTION_TO_ERROR_CODE({
    propagate_lanes_(tensor_of(pending), tensor_of(spikes), tensor_of(targets), tensor_of(weights),
                     optional_of(delays), delay, tensor_of(step), optional_of(first_row));
  });
}

AOTI_TORCH_EXPORT AOTITorchError aoti_torch_cpu_take_row_lanes_(AtenTensorHandle pending, AtenTensorHandle step,
                                                                AtenTensorHandle* out) {
  AOTI_TORCH_CONVERT_EXCEPTION_TO_ERROR_CODE(
      { *out = torch::aot_inductor::new_tensor_handle(take_row_lanes_(tensor_of(pending), tensor_of(step))); });
}

AOTI_TORCH_EXPORT AOTITorchError aoti_torch_cpu_take_row_(AtenTensorHandle pending, AtenTensorHandle step,
                                                          AtenTensorHandle* out) {
  AOTI_TORCH_CONVERT_EXCEPTION_TO_ERROR_CODE(
      { *out = torch::aot_inductor::new_tensor_handle(take_row_(tensor_of(pending), tensor_of(step))); });
}

AOTI_TORCH_EXPORT AOTITorchError aoti_torch_cpu_keyed_poisson(AtenTensorHandle mean, AtenTensorHandle zero,
                                                              AtenTensorHandle step, AtenTensorHandle neuron,
                                                              int64_t seed, int64_t stream, AtenTensorHandle* out) {
  AOTI_TORCH_CONVERT_EXCEPTION_TO_ERROR_CODE({
    *out = torch::aot_inductor::new_tensor_handle(
        keyed_poisson(tensor_of(mean), tensor_of(zero), tensor_of(step), tensor_of(neuron), seed, stream));
  });
}

}  // extern "C"

TORCH_LIBRARY(sapicore, m) {
  m.def("propagate(Tensor pending, Tensor spikes, Tensor targets, Tensor weights, Tensor? delays, int delay, Tensor step, Tensor? first_row) -> Tensor");
  m.def("propagate_(Tensor(a!) pending, Tensor spikes, Tensor targets, Tensor weights, Tensor? delays, int delay, Tensor step, Tensor? first_row) -> ()");
  m.def("take_row_(Tensor(a!) pending, Tensor step) -> Tensor");
  m.def("propagate_lanes_(Tensor(a!) pending, Tensor spikes, Tensor targets, Tensor weights, Tensor? delays, int delay, Tensor step, Tensor? first_row) -> ()");
  m.def("take_row_lanes_(Tensor(a!) pending, Tensor step) -> Tensor");
  m.def("propagate_lanes(Tensor pending, Tensor spikes, Tensor targets, Tensor weights, Tensor? delays, int delay, Tensor step, Tensor? first_row) -> Tensor");
  m.def("events(Tensor[] records, int first_record, float interval) -> (Tensor, Tensor, Tensor)");
  m.def("poisson(Tensor mean) -> Tensor", {at::Tag::nondeterministic_seeded});
  m.def("keyed_poisson(Tensor mean, Tensor zero, Tensor step, Tensor neuron, int seed, int stream) -> Tensor");
  m.def("keyed_uniform_rows(Tensor index, Tensor counts, int seed, int stream) -> Tensor");
  m.def("keyed_sources(Tensor index, Tensor counts, int seed, int stream, int sources) -> Tensor");
  m.def("stable_order(Tensor keys, int bins) -> Tensor");
  m.def("keyed_gaps(Tensor index, int seed, int stream, int available, float log_q) -> (Tensor, Tensor)");
  m.def("keyed_distinct(Tensor index, int count, int seed, int stream, int available, bool complement) -> Tensor");
}

TORCH_LIBRARY_IMPL(sapicore, CPU, m) {
  m.impl("propagate", &propagate);
  m.impl("propagate_", &propagate_);
  m.impl("take_row_", &take_row_);
  m.impl("propagate_lanes", &propagate_lanes);
  m.impl("propagate_lanes_", &propagate_lanes_);
  m.impl("take_row_lanes_", &take_row_lanes_);
  m.impl("events", &events);
  m.impl("poisson", &poisson);
  m.impl("keyed_poisson", &keyed_poisson);
  m.impl("keyed_uniform_rows", &keyed_uniform_rows);
  m.impl("keyed_sources", &keyed_sources);
  m.impl("stable_order", &stable_order);
  m.impl("keyed_gaps", &keyed_gaps);
  m.impl("keyed_distinct", &keyed_distinct);
}
