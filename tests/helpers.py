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


def reference(pending, spikes, targets, weights, delays, step):
    """What the kernel computes, written with torch ops over every synapse: row ``step`` mod D cleared,
    every spiking synapse added at its arrival row (padding entries, target ``P - 1``, add nothing)."""
    length, columns = pending.shape
    targets = targets.int()  # uint16 tables too
    delays = torch.as_tensor(delays).expand(targets.shape)
    slots = torch.remainder(step + 1 + delays[:-1], length)
    flat = (slots * columns + targets[:-1]).reshape(-1)
    values = (weights[:-1] * spikes[:, None]).masked_fill(targets[:-1] == columns - 1, 0.0).reshape(-1)  # padding
    cleared = pending.index_fill(0, torch.remainder(torch.as_tensor(step), length).reshape(1), 0.0)
    return cleared.reshape(-1).index_add(0, flat, values).reshape(length, columns)


def random_table(n_pre=50, n_post=30, width=7, max_delay=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    degree = torch.randint(0, width + 1, (n_pre + 1, 1), generator=g)
    degree[-1] = 0  # the padding row
    targets = torch.randint(0, n_post, (n_pre + 1, width), generator=g)
    targets = torch.where(torch.arange(width) < degree, targets, n_post).to(torch.int32)  # n_post pads each row's end
    weights = torch.randn(n_pre + 1, width, generator=g, dtype=dtype)
    delays = torch.randint(0, max_delay + 1, (n_pre + 1, width), generator=g, dtype=torch.int16)
    pending = torch.randn(max_delay + 1, n_post + 1, generator=g, dtype=dtype)
    spikes = (torch.rand(n_pre, generator=g) < 0.3).to(dtype) * torch.rand(
        n_pre, generator=g, dtype=dtype
    )  # counts, not only 0/1
    return pending, spikes, targets, weights, delays
