import math

import pytest
import torch

from sapicore import analysis


def test_mean_rate_and_spike_times():
    spikes = torch.zeros(1000, 2)
    spikes[::100, 0] = 1.0  # every 10 ms at dt = 0.1 ms
    assert analysis.mean_rate(spikes, 0.1) == pytest.approx(50.0)  # 10 spikes over two neurons in 0.1 s
    times, neurons = analysis.spike_times(spikes, 0.1)
    assert times[:2].tolist() == pytest.approx([0.1, 10.1]) and set(neurons.tolist()) == {0}


def test_isi_cv_is_zero_for_regular_and_near_one_for_poisson_trains():
    regular = torch.zeros(10_000, 3)
    regular[::50] = 1.0
    assert analysis.isi_cv(regular, 0.1) == pytest.approx(0.0, abs=1e-9)
    torch.manual_seed(0)
    poisson = (torch.rand(200_000, 20) < 0.002).float()
    assert analysis.isi_cv(poisson, 0.1) == pytest.approx(1.0, abs=0.05)
    assert math.isnan(analysis.isi_cv(torch.zeros(10, 2), 0.1))
