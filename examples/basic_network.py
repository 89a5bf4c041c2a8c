"""A complete object-API example: a model tree, YAML configuration, STDP training, NIX and TensorBoard logs.

Run:  python examples/basic_network.py --out outputs/basic_network

Forty Poisson-like input neurons drive ten LIF neurons through plastic exponential synapses. The
script writes the model's configuration to ``config.yaml`` (edit it and run again: the values are
applied to the model tree), trains for a few epochs with STDP, logs the weights and the output
potentials after every epoch to ``log.nix`` and to TensorBoard (``tensorboard/``), then reads the
NIX log back and prints how the mean weight changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import tree_config
from tensorboardX import SummaryWriter

import sapicore.functional as sf
from sapicore.functional import connectivity
from sapicore.learning.plasticity import STDPLearning
from sapicore.logging import get_loggable_properties, load_save_get_loggable_properties, log_tensor_board
from sapicore.logging.nix import NixLogReader, NixLogWriter
from sapicore.model import SapicoreModel
from sapicore.neuron.spiking import LIFNeuron
from sapicore.pipeline import PipelineBase
from sapicore.synapse.projection import ProjectionSynapse


class PlasticModel(SapicoreModel):
    """Input layer -> plastic synapses -> output layer, trained by STDP."""

    _config_children_ = {"input": "inputs", "output": "outputs", "synapses": "synapses_in", "stdp": "stdp"}
    _loggable_children_ = {"output": "outputs", "synapses": "synapses_in"}

    def __init__(self, n_in: int = 40, n_out: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inputs = LIFNeuron(shape=n_in, t_ref=2.0)
        self.outputs = LIFNeuron(shape=n_out, tau_mem=10.0)
        conn = connectivity.fixed_probability(n_in, n_out, 0.5, seed=1)
        self.synapses_in = ProjectionSynapse(conn, 1.0, sf.Exponential(tau=5.0), kind="dense")
        self.add_neuron(None, "inputs", self.inputs)
        self.add_synapse(self.inputs, "synapses_in", self.synapses_in)
        self.add_neuron(self.synapses_in, "outputs", self.outputs)
        self.stdp = STDPLearning(a_plus=0.01, a_minus=0.012, w_max=2.0)
        self.add_learning_rule("stdp", self.stdp)

    def forward(self, drive: torch.Tensor) -> torch.Tensor:
        spikes = self.inputs(drive)
        current = self.synapses_in(spikes, self.outputs.v)
        return self.outputs(current)

    def apply_learning(self, **kwargs) -> None:
        self.stdp.apply_learning(self.inputs, self.synapses_in, self.outputs)


class TrainingPipeline(PipelineBase):
    """Configure, train and log a :class:`PlasticModel`."""

    _config_props_ = ("epochs", "steps_per_epoch")
    _config_children_ = {"model": "model"}

    def __init__(self, out: Path) -> None:
        self.out = out
        self.epochs = 5
        self.steps_per_epoch = 500
        self.model = PlasticModel()

    def run(self) -> None:
        config_file = self.out / "config.yaml"
        if config_file.exists():  # the user's edits win
            tree_config.apply_config(self, tree_config.read_config_from_file(config_file))
        tree_config.dump_config(config_file, tree_config.read_config_from_object(self))
        loggable = load_save_get_loggable_properties(self.model, self.out / "loggable.yaml", default_value=False)
        if not loggable:  # nothing selected yet: log the weights and the output potentials
            loggable = get_loggable_properties(self.model, {"synapses": {"weights": True}, "output": {"v": True}})

        model = self.model
        model.initialize_state()
        model.initialize_learning_state()
        generator = torch.Generator().manual_seed(0)
        writer = SummaryWriter(str(self.out / "tensorboard"))
        config = tree_config.read_config_from_object(self)
        with NixLogWriter(self.out / "log.nix", config_data=config, overwrite=True) as log, torch.no_grad():
            log.create_block("training")
            arrays = log.get_property_arrays("training", loggable)
            for epoch in range(self.epochs):
                spikes = 0.0
                for _ in range(self.steps_per_epoch):
                    drive = 1.5 + 3.0 * torch.rand(model.inputs.shape, generator=generator)
                    spikes += float(model(drive).sum())
                    model.apply_learning()
                log.log(arrays, epoch)
                log.flush()
                log_tensor_board(writer, loggable, global_step=epoch)
                print(f"epoch {epoch}: {spikes:.0f} output spikes")
        writer.close()

        with NixLogReader(self.out / "log.nix") as reader:
            epochs, weights = reader.get_experiment_property_data("training", ("synapses", "weights"))
        mask = model.synapses_in.projection.mask.numpy()
        print(
            f"mean weight: {weights[0][mask].mean():.3f} after epoch {epochs[0]}, "
            f"{weights[-1][mask].mean():.3f} after epoch {epochs[-1]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/basic_network")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    TrainingPipeline(out).run()


if __name__ == "__main__":
    main()
