import torch

import sapicore.functional as sf
from sapicore import plot


def test_every_figure_is_written_as_png_and_svg(tmp_path):
    model = sf.LIF()
    _, rec = sf.simulate(
        model,
        model.init_state(30),
        inputs=lambda t: torch.linspace(1.0, 4.0, 30),
        steps=2000,
        dt=0.1,
        record=("v", "spikes"),
    )
    lanes, labels = sf.grid(model, tau_mem=[10.0, 20.0], t_ref=[1.0, 2.0, 3.0])
    _, swept = sf.sweep(lanes, inputs=3.0, steps=500, dt=0.1, shape=4)
    rates = (swept["spikes"].sum((1, 2)) / 4 / 0.05).tolist()
    paths = [
        plot.raster({"lif": rec["spikes"]}, 0.1, tmp_path / "raster.png"),
        plot.population_rate({"lif": rec["spikes"]}, 0.1, tmp_path / "rate.svg"),
        plot.traces(rec["v"], rec["t"], tmp_path / "traces.png", neurons=(0, 29)),
        plot.weights(torch.rand(20, 10), tmp_path / "weights.png", mask=torch.rand(20, 10) < 0.5),
        plot.sweep_heatmap(labels, rates, "tau_mem", "t_ref", tmp_path / "heatmap.png", measure="rate (Hz)"),
    ]
    for path in paths:
        assert path.exists() and path.stat().st_size > 1000
    assert (tmp_path / "rate.svg").read_text().lstrip().startswith("<?xml")
