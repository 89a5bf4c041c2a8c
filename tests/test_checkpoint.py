import pytest
import torch

import sapicore.functional as sf
from sapicore.checkpoint import load_checkpoint, save_checkpoint
from sapicore.functional import connectivity as C


def noisy_network():
    return sf.Network(
        populations={"noise": sf.Population(sf.PoissonSource(rate=200.0), 50), "cells": sf.Population(sf.LIF(), 20)},
        projections={
            "drive": sf.projection(
                "noise",
                "cells",
                C.fixed_in_degree(50, 20, 10, seed=1),
                0.6,
                sf.Exponential(5.0),
                dt=0.1,
                delay=0.5,
                plasticity=sf.STDP(a_plus=0.01, a_minus=0.01, w_max=2.0),
            ),
        },
    )


def test_a_run_stopped_and_resumed_equals_one_uninterrupted_run(tmp_path):
    net = noisy_network()
    torch.manual_seed(7)
    _, whole = sf.simulate(net, net.init_state(), steps=600, dt=0.1, record=("cells.spikes", "drive.weights"))
    assert whole["cells.spikes"].sum() > 0

    torch.manual_seed(7)
    middle, first = sf.simulate(net, net.init_state(), steps=250, dt=0.1, record=("cells.spikes", "drive.weights"))
    save_checkpoint(tmp_path / "run.ckpt", middle, step=250, model=net)
    torch.manual_seed(12345)  # whatever happens in between
    checkpoint = load_checkpoint(tmp_path / "run.ckpt")
    _, second = sf.simulate(
        checkpoint["model"],
        checkpoint["state"],
        steps=350,
        dt=0.1,
        start_step=checkpoint["step"],
        record=("cells.spikes", "drive.weights"),
    )
    assert torch.equal(torch.cat([first["cells.spikes"], second["cells.spikes"]]), whole["cells.spikes"])
    assert torch.equal(torch.cat([first["drive.weights"], second["drive.weights"]]), whole["drive.weights"])
    assert torch.allclose(second["t"], whole["t"][250:])


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="is not a readable Sapicore checkpoint"):
        load_checkpoint(tmp_path / "junk.ckpt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="is not a Sapicore checkpoint of format 1"):
        load_checkpoint(tmp_path / "other.ckpt")


def test_a_checkpoint_is_refused_on_a_network_whose_synapses_changed_though_the_shapes_agree(tmp_path):
    def network(seed, delay=0.5):
        return sf.Network(
            {"noise": sf.Population(sf.PoissonSource(rate=200.0), 40), "cells": sf.Population(sf.LIF(), 20)},
            {
                "drive": sf.projection(
                    "noise",
                    "cells",
                    C.fixed_out_degree(40, 20, 2, seed=seed),  # 80 synapses whatever the seed
                    0.6,
                    sf.Exponential(5.0),
                    dt=0.1,
                    delay=delay,
                    plasticity=sf.STDP(a_plus=0.01, a_minus=0.01, w_max=2.0),
                )
            },
        )

    trained = network(seed=1)
    final, _ = sf.simulate(trained, trained.init_state(), steps=200, dt=0.1)
    save_checkpoint(tmp_path / "run.ckpt", final, step=200, model=trained)
    state = load_checkpoint(tmp_path / "run.ckpt")["state"]
    sf.simulate(network(seed=1), state, steps=10, dt=0.1, start_step=200)  # the same network, rebuilt: accepted
    for changed in (network(seed=2), network(seed=1, delay=torch.tensor([0.5, 0.3] * 40))):  # same longest delay
        with pytest.raises(ValueError, match=r"state.projections\['drive'\] was built for other synapses"):
            sf.simulate(changed, state, steps=10, dt=0.1, start_step=200)
