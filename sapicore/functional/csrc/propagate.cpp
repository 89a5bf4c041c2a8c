// Event-driven spike propagation for sparse projections, on the CPU.
//
// One operator, sapicore::propagate, with a leading lane axis L on every argument (L = 1 outside
// vmap; shared arguments may be expanded views with stride 0):
//   pending (L, D, P) float   future synaptic input, one row per step of the ring buffer
//   spikes  (L, N)    float   this step's source output (0 where silent)
//   targets (L, N + 1, W) i64 target neuron of each outgoing synapse (P - 1 for padding)
//   weights (L, N + 1, W) float
//   delays  (L, 1, 1) or (L, N + 1, W) i64   delay of each synapse, in steps
//   step    (L,) i64          steps taken so far
// It returns a copy of pending in which every synapse of every source neuron with a non-zero
// output s has added w * s at row (step + 1 + delay) mod D, column target. The work is proportional
// to the number of spiking neurons times the out-degree, with no upper limit on the spike count.
#include <torch/extension.h>

namespace {

template <typename T>
void add_events(at::Tensor& out, const at::Tensor& spikes, const at::Tensor& targets, const at::Tensor& weights,
                const at::Tensor& delays, const at::Tensor& step) {
  auto o = out.accessor<T, 3>();
  auto s = spikes.accessor<T, 2>();
  auto tg = targets.accessor<int64_t, 3>();
  auto w = weights.accessor<T, 3>();
  auto d = delays.accessor<int64_t, 3>();
  auto st = step.accessor<int64_t, 1>();
  const int64_t lanes = s.size(0), sources = s.size(1), width = tg.size(2), length = o.size(1), columns = o.size(2);
  const bool per_synapse = d.size(1) > 1;
  for (int64_t lane = 0; lane < lanes; ++lane) {
    const int64_t first = st[lane] + 1;
    for (int64_t i = 0; i < sources; ++i) {
      const T value = s[lane][i];
      if (value == T(0)) continue;
      for (int64_t j = 0; j < width; ++j) {
        const int64_t target = tg[lane][i][j];
        const int64_t delay = per_synapse ? d[lane][i][j] : d[lane][0][0];
        TORCH_CHECK(target >= 0 && target < columns && delay >= 0,
                    "sapicore::propagate: target ", target, " or delay ", delay, " out of range");
        o[lane][(first + delay) % length][target] += w[lane][i][j] * value;
      }
    }
  }
}

at::Tensor propagate(const at::Tensor& pending, const at::Tensor& spikes, const at::Tensor& targets,
                     const at::Tensor& weights, const at::Tensor& delays, const at::Tensor& step) {
  TORCH_CHECK(pending.dim() == 3 && spikes.dim() == 2 && targets.dim() == 3 && weights.dim() == 3 &&
                  delays.dim() == 3 && step.dim() == 1,
              "sapicore::propagate: expected pending (L, D, P), spikes (L, N), targets and weights (L, N + 1, W), "
              "delays (L, 1, 1) or (L, N + 1, W), step (L,)");
  const int64_t lanes = pending.size(0);
  TORCH_CHECK(spikes.size(0) == lanes && targets.size(0) == lanes && weights.size(0) == lanes &&
                  delays.size(0) == lanes && step.size(0) == lanes,
              "sapicore::propagate: arguments disagree on the number of lanes");
  TORCH_CHECK(targets.size(1) == spikes.size(1) + 1 && weights.sizes() == targets.sizes(),
              "sapicore::propagate: targets and weights must be (L, N + 1, W) for spikes (L, N)");
  TORCH_CHECK((delays.size(1) == 1 && delays.size(2) == 1) || delays.sizes() == targets.sizes(),
              "sapicore::propagate: delays must be (L, 1, 1) or shaped like targets");
  TORCH_CHECK(spikes.scalar_type() == pending.scalar_type() && weights.scalar_type() == pending.scalar_type(),
              "sapicore::propagate: pending, spikes and weights must share one floating dtype");
  TORCH_CHECK(targets.scalar_type() == at::kLong && delays.scalar_type() == at::kLong && step.scalar_type() == at::kLong,
              "sapicore::propagate: targets, delays and step must be int64");
  at::Tensor out = pending.clone(at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "sapicore::propagate", [&] {
    add_events<scalar_t>(out, spikes, targets, weights, delays, step);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(sapicore, m) {
  m.def("propagate(Tensor pending, Tensor spikes, Tensor targets, Tensor weights, Tensor delays, Tensor step) -> Tensor");
}

TORCH_LIBRARY_IMPL(sapicore, CPU, m) { m.impl("propagate", &propagate); }
