"""Small helpers shared by the tests."""

import torch

import sapicore.functional as sf


def spike_times(model, current, dt, duration, shape=(1,), dtype=torch.float64, device="cpu"):
    """Run ``model`` with a constant ``current`` and return one tensor of spike times (ms) per neuron."""
    state = model.init_state(shape, device=device, dtype=dtype)
    if isinstance(current, torch.Tensor):
        tensor = current.to(device=device, dtype=dtype)
        current = lambda t: tensor  # noqa: E731  (constant in time, one value per neuron)
    _, rec = sf.simulate(model, state, inputs=current, duration=duration, dt=dt)
    spikes = rec["spikes"].reshape(rec["spikes"].shape[0], -1).cpu()
    times = rec["t"].cpu()
    return [times[spikes[:, i] > 0] for i in range(spikes.shape[1])]
