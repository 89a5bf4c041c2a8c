"""Checkpoints: the complete state of a simulation, to stop a long run and resume it exactly.

A checkpoint holds the state pytree, the model (parameters pytree), the number of steps taken and
the random generators' states (CPU and, where present, CUDA), so that a resumed run draws the same
random numbers and gives the same spikes as one uninterrupted run::

    final, rec = sf.simulate(net, state, dt=0.1, steps=5000)
    save_checkpoint("run.ckpt", final, step=5000, model=net)
    ...
    ckpt = load_checkpoint("run.ckpt")          # restores the random generators
    sf.simulate(ckpt["model"], ckpt["state"], dt=0.1, steps=5000, start_step=ckpt["step"])

A state knows its network: each projection's state carries the fingerprint of the synapses it was
built for ([`wiring`][sapicore.functional.Projection.wiring]: which pairs are connected, their delays,
dt), so resuming on a network whose populations, sizes or synapses differ (a changed connectivity seed
with the same shapes, say) is refused by ``simulate``, naming the projection, instead of putting
learnt weights onto other pairs.

A partitioned run (each rank holding its share of a network, ``sapicore.functional.partition``)
checkpoints under a process group: every rank calls ``save_checkpoint(path, state, step=...,
model=share)`` with its own state; each writes its shard (``path.step<step>.rank0-of-2`` ...), rank 0
then writes the manifest under ``path`` (which names the step) and removes the shards of earlier
checkpoints: a run killed while saving leaves the previous checkpoint whole. ``load_checkpoint(path)`` on each rank of a run with as many
ranks reads that rank's shard (its state, share and generators).

To resume on another number of processes (or in one process, or a single process's checkpoint on
several), each rank builds its share of the same network and passes it:
``load_checkpoint(path, model=share)`` maps every shard into memory and moves the state onto ``share``
(`sapicore.functional.running.reshard`: neurons, synapses and spikes in transit go by their place
in the whole network; a network that differs is refused, naming what differs). The generators are
then not restored (each rank's stream belonged to the old partition): a run whose random numbers
are keyed by neuron (``background="keyed"``, spike inputs) goes on bit for bit as if never stopped.

To survive a kill, a run saves checkpoints as it goes: `Checkpoints` is the ``checkpoint=``
function of ``simulate``, which also keeps where each sink (a NIX file, spike events, TensorBoard)
stood, so that a resumed run's sinks go on from there::

    nix = NixRecordSink("run.nix", events=("exc.spikes",))
    saving = Checkpoints("run.ckpt", net, sinks=[nix])
    sf.simulate(net, state, dt=0.1, steps=100_000, record=("exc.spikes",), sinks=[nix], keep=False,
                checkpoint=saving, checkpoint_every=10_000)
    ... killed; later:
    ckpt = load_checkpoint("run.ckpt")
    nix = NixRecordSink("run.nix", events=("exc.spikes",))
    resume_sinks(ckpt, [nix])                   # the file is cut back to the checkpoint, then appended
    sf.simulate(ckpt["model"], ckpt["state"], dt=0.1, steps=100_000 - ckpt["step"], start_step=ckpt["step"],
                record=("exc.spikes",), sinks=[nix], keep=False, checkpoint=saving, checkpoint_every=10_000)

``run.nix`` then holds the records of one uninterrupted run. ``sapicore run --checkpoint-every MS``
and ``--resume`` do this for a spec.

Checkpoints are pickles (``torch.save``): load only files you trust.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

__all__ = ["save_checkpoint", "load_checkpoint", "shard_path", "model_path", "Checkpoints", "resume_sinks"]

FORMAT = 1


def _share(model: Any) -> tuple[int, int] | None:
    """(rank, world) when ``model`` is one rank's share of a partitioned network, else None."""
    exchange = getattr(model, "exchange", None)
    return None if exchange is None else (exchange.rank, exchange.world)


def shard_path(path: str | Path, rank: int, world: int, step: int | None = None) -> Path:
    """Where rank ``rank`` of ``world`` keeps its shard of the checkpoint ``path`` taken at ``step``
    (``path.step<step>.rank<rank>-of-<world>``; without ``step``, the name of format 1's first
    version, which had no step in it)."""
    path = Path(path)
    return path.with_name(f"{path.name}{'' if step is None else f'.step{step}'}.rank{rank}-of-{world}")


def model_path(path: str | Path, share: tuple[int, int] | None = None) -> Path:
    """Where `Checkpoints` keeps the network of the checkpoint ``path`` (of the share ``(rank,
    world)``), once per run, beside the checkpoints that name it."""
    path = Path(path)
    name = path.name if share is None else shard_path(path, *share).name
    return path.with_name(f"{name}.model")


def _remove_stale(path: Path, kept: set[str]) -> None:
    """Remove every shard and network file of the checkpoint ``path`` (and partial one) not in ``kept``."""
    ours = re.compile(rf"{re.escape(path.name)}((\.step\d+)?\.rank\d+-of-\d+|(\.rank\d+-of-\d+)?\.model)(\.partial)?")
    for found in path.parent.iterdir():
        if ours.fullmatch(found.name) and found.name not in kept:
            found.unlink(missing_ok=True)


def _write(payload: dict, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)  # a crash while writing never leaves a half-written checkpoint under the name


def save_checkpoint(path: str | Path, state: Any, *, step: int, model: Any = None, extra: dict | None = None) -> Path:
    """Write ``state`` (and ``model``, ``extra``) with the step count and the generators' states; for
    a rank's share (``model``), its shard, and on rank 0 the manifest once every shard is written
    (every rank must call it)."""
    return _save(Path(path), state, step, model, extra, separate=False)


def _save(path: Path, state: Any, step: int, model: Any, extra: dict | None, separate: bool) -> Path:
    """`save_checkpoint`; with ``separate``, the network is not written into the checkpoint but
    named: its file (`model_path`) must exist by the time every rank has written its shard."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    share = _share(model)
    if share is not None:
        import torch.distributed as dist

        if not dist.is_initialized() or dist.get_world_size() != share[1] or dist.get_rank() != share[0]:
            raise ValueError(
                f"a share of rank {share[0]} of {share[1]} is saved from that rank of an initialised process group "
                "of as many processes (every rank calls save_checkpoint)"
            )
    payload = {
        "format": FORMAT,
        "state": state,
        "model": None if separate else model,
        "step": step,
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "extra": extra or {},
        **({"model_file": model_path(path, share).name} if separate else {}),
    }
    if share is None:
        _write(payload, path)
        _remove_stale(path, {model_path(path).name} if separate else set())
        return path
    rank, world = share
    _write({**payload, "share": share}, shard_path(path, rank, world, step))
    group = model.exchange.group
    dist.barrier(group=group)  # every shard is written before the manifest names them
    if rank == 0:
        _write({"format": FORMAT, "step": step, "world": world}, path)
        kept = {shard_path(path, r, world, step).name for r in range(world)}
        _remove_stale(path, kept | ({model_path(path, (r, world)).name for r in range(world)} if separate else set()))
    dist.barrier(group=group)  # no rank goes on (and may load it) before the manifest is there
    return path


def _read(path: Path, what: str, map_location: Any, mmap: bool = False) -> Any:
    """The unpickled contents of the ``what`` (a checkpoint or a shard) at ``path``; with ``mmap``,
    its tensors stay in the file until read."""
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as err:  # pickle and zip errors for damaged files
        raise ValueError(f"{path} is not a readable Sapicore {what} ({type(err).__name__})") from err


def load_checkpoint(path: str | Path, restore_rng: bool = True, map_location: Any = None, model: Any = None) -> dict:
    """Read a checkpoint; with ``restore_rng`` put the random generators back where they were.

    ``model``: this process's network (a rank's share, or a whole network) when it may be
    partitioned otherwise than the run that saved the checkpoint: its state is then moved onto
    ``model`` (returned as ``"model"``), and the generators are left as they are, ``"resharded"``
    giving the numbers of processes before and now. Where the partitions agree, the checkpoint is
    read as without ``model``.
    """
    from .functional.network import Network

    if model is not None and not isinstance(model, Network):
        raise TypeError(f"model must be the Network (or a rank's share) to resume on, got {type(model).__name__}")
    path = Path(path)
    payload = _read(path, "checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Sapicore checkpoint of format {FORMAT}")
    saved_world = payload.get("world", 1)
    now = _share(model) or (0, 1)
    if model is not None and (saved_world != now[1] or (saved_world == 1 and _share(payload["model"]) is not None)):
        return _resharded(path, payload, model, now[1], map_location)
    if "world" in payload:  # the manifest of a partitioned run: this rank's shard
        payload = _load_shard(path, payload["world"], payload["step"], map_location, model)
    else:
        payload = _with_model(payload, path, map_location, model)
    if restore_rng:
        torch.set_rng_state(payload["rng"])
        if payload["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return payload


def _resharded(path: Path, payload: dict, model: Any, world: int, map_location: Any) -> dict:
    """The checkpoint at ``path`` (``payload``: its manifest, or a single process's checkpoint) moved
    onto ``model``, this process's share of a partition on ``world`` processes (or a whole network)."""
    from .functional.network import Network
    from .functional.running.reshard import reshard

    saved_world = payload.get("world")
    extra: list = []

    def shards():
        pieces = (
            [_with_model(payload, path, map_location)]
            if saved_world is None
            else (_shard(path, rank, saved_world, payload["step"], map_location) for rank in range(saved_world))
        )
        for piece in pieces:
            if not isinstance(piece.get("model"), Network):
                raise ValueError(
                    f"{path} was saved without its network (save_checkpoint(..., model=network)), so its state "
                    "cannot be moved onto another partition"
                )
            extra.append(piece.get("extra", {}))
            yield piece["model"], piece["state"]

    state = reshard(model, shards())
    return {
        "format": FORMAT,
        "state": state,
        "model": model,
        "step": payload["step"],
        "rng": None,
        "cuda_rng": None,
        "extra": extra[0],
        "resharded": (saved_world or 1, world),
    }


def _shard(
    path: Path, rank: int, world: int, step: int, map_location: Any, mmap: bool = True, given: Any = None
) -> dict:
    """The shard of rank ``rank`` of ``world`` of the checkpoint ``path`` (whose manifest says ``step``)."""
    shard = shard_path(path, rank, world, step)
    if not shard.exists() and shard_path(path, rank, world).exists():
        shard = shard_path(path, rank, world)  # saved before shards were named by step
    payload = _read(shard, "checkpoint shard", map_location, mmap=mmap)
    if not isinstance(payload, dict) or payload.get("share") != (rank, world):
        raise ValueError(f"{shard} is not the shard of rank {rank} of {world}")
    if payload.get("step") != step:
        raise ValueError(f"{shard} holds step {payload.get('step')}, but its manifest {path} step {step}")
    return _with_model(payload, shard, map_location, given)


def _with_model(payload: dict, path: Path, map_location: Any, given: Any = None) -> dict:
    """``payload`` (a checkpoint or shard read from ``path``) with its network read from the file it
    names, where `Checkpoints` kept it apart. That file is mapped into memory: tensors of the network
    that a resumed run does not use (the tables of a network rebuilt by ``sapicore run --resume``)
    are never read. State leaves that were the network's own tensors are ``given``'s (the network
    the caller resumes on) where those hold the same values, else the saved network's."""
    if not payload.get("model_file"):
        return payload
    saved = _read_network(path.with_name(payload["model_file"]), map_location)
    return {**payload, "model": saved, "state": _with_shared(payload["state"], saved, given)}


def _read_network(path: Path, map_location: Any) -> Any:
    """The network kept apart by `Checkpoints` at ``path``, its tensors mapped into memory."""
    kept = _read(path, "checkpoint's network", map_location, mmap=True)
    if not isinstance(kept, dict) or "model" not in kept:
        raise ValueError(f"{path} is not the network of a Sapicore checkpoint")
    return kept["model"]


def _load_shard(path: Path, world: int, step: int, map_location: Any, given: Any = None) -> dict:
    import torch.distributed as dist

    here = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if here != world:
        raise ValueError(
            f"{path} holds the shares of a run on {world} processes; resume it on as many "
            f"(torchrun --nproc-per-node {world}), each rank loading its own shard (this run has {here}), "
            "or pass each rank's share of the network as model= to move the state onto it"
        )
    return _shard(path, dist.get_rank(), world, step, map_location, mmap=False, given=given)


class Checkpoints:
    """``simulate(..., checkpoint=Checkpoints(path, model, sinks), checkpoint_every=N)`` saves a
    checkpoint at ``path`` every ``N`` steps (each replacing the last), holding the state, the step,
    the generators, ``extra`` and, under ``extra["sinks"]``, each sink's position
    (``sink.checkpoint()``) for `resume_sinks`. ``model`` is the network as ``simulate`` gets it (a
    rank's share in a partitioned run, where every rank passes its own and only rank 0 its sinks);
    it is written once, at the first checkpoint, into a file of its own beside them
    (`model_path`: ``path.model``, ``path.rank0-of-2.model``, ...), which each checkpoint names and
    `load_checkpoint` reads with it: a network whose synapses are fixed (in its tables, gigabytes
    at the microcircuit's full scale) is not written again at every checkpoint. A folder that does
    not exist or cannot be written is refused when `Checkpoints` is made, before the run.
    """

    def __init__(self, path: str | Path, model: Any, sinks: Any = (), extra: dict | None = None) -> None:
        sinks = list(sinks)
        for sink in sinks:
            if not (callable(getattr(sink, "checkpoint", None)) and callable(getattr(sink, "resume", None))):
                raise TypeError(
                    f"{type(sink).__name__} cannot go on after a checkpoint (it has no checkpoint() and resume()); "
                    "leave it out of Checkpoints' sinks"
                )
        if extra is not None and not isinstance(extra, dict):
            raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
        folder = Path(path).absolute().parent
        if not folder.is_dir():  # found now, not at the first checkpoint hours into the run
            raise FileNotFoundError(f"no folder {folder} to keep the checkpoints {Path(path).name} in; create it first")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write the checkpoints {Path(path).name} into {folder} (no permission)")
        self.path, self.model, self.sinks, self.extra = Path(path), model, sinks, dict(extra or {})
        self.step: int | None = None  # the step of the last checkpoint saved
        self.digests: dict[int, str] = {}  # the network's tensors that the state shares, by place

    def __call__(self, state: Any, step: int) -> None:
        if self.step is None and self.model is not None:  # the network does not change during a run
            target = model_path(self.path, _share(self.model))
            if not _holds(target, self.model):  # a resumed run finds its network's file there already
                _write({"format": FORMAT, "model": self.model}, target)
        positions = [sink.checkpoint() for sink in self.sinks]
        extra = {**self.extra, "sinks": positions}
        if self.model is not None:
            state = _without_shared(state, self.model, self.digests)
        _save(self.path, state, step, self.model, extra, separate=self.model is not None)
        self.step = step


def _holds(path: Path, model: Any) -> bool:
    """Whether the network file at ``path`` (an interrupted run's, say) holds ``model`` already: the
    same structure and settings, the same partition, every tensor equal. Its tensors are read
    through a memory map, about a second per GB where writing them again takes about three."""
    try:
        saved = _read_network(path, "cpu")
    except (FileNotFoundError, ValueError):  # none yet, or a damaged or foreign file: written again
        return False
    exchanges = (getattr(saved, "exchange", None), getattr(model, "exchange", None))
    if exchanges != (None, None):  # a rank's share: the same partition, then the rest
        if None in exchanges or exchanges[0].layout() != exchanges[1].layout():
            return False
        from sapicore.functional.pytree import replace

        saved, model = replace(saved, exchange=None), replace(model, exchange=None)
    theirs, their_structure = tree_flatten(saved)
    ours, structure = tree_flatten(model)
    if their_structure != structure:
        return False
    for their, our in zip(theirs, ours):
        if isinstance(their, torch.Tensor) or isinstance(our, torch.Tensor):
            same = (
                isinstance(their, torch.Tensor)
                and isinstance(our, torch.Tensor)
                and their.dtype == our.dtype
                and their.shape == our.shape
                and torch.equal(their, our.cpu())
            )
        else:
            same = their == our
        if not same:
            return False
    return True


class _InModel:
    """A state's leaf that is one of its network's tensors (fixed weights), kept in the checkpoint as
    the leaf's place among the network's tensors (the network's file holds it) and a digest of its
    bytes."""

    def __init__(self, index: int, digest: str) -> None:
        self.index, self.digest = index, digest


def _view(leaf: torch.Tensor) -> tuple:
    """What makes two tensors the same view of the same memory."""
    return (leaf.untyped_storage().data_ptr(), leaf.storage_offset(), tuple(leaf.shape), leaf.stride(), leaf.dtype)


def _digest(leaf: torch.Tensor) -> str:
    """A digest of a tensor's dtype, shape and values (about 1 s per GB)."""
    data = leaf.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    digest = hashlib.blake2b(f"{leaf.dtype}{tuple(leaf.shape)}".encode(), digest_size=16)
    digest.update(memoryview(data))
    return digest.hexdigest()


def _without_shared(state: Any, model: Any, digests: dict[int, str]) -> Any:
    """``state`` with each leaf that is one of ``model``'s tensors replaced by an `_InModel`
    (``digests``: those already computed, by place, filled in)."""
    places = {_view(leaf): index for index, leaf in enumerate(tree_flatten(model)[0]) if isinstance(leaf, torch.Tensor)}
    leaves, structure = tree_flatten(state)
    kept = []
    for leaf in leaves:
        index = places.get(_view(leaf)) if isinstance(leaf, torch.Tensor) else None
        if index is not None and index not in digests:
            digests[index] = _digest(leaf)
        kept.append(leaf if index is None else _InModel(index, digests[index]))
    return tree_unflatten(kept, structure)


def _with_shared(state: Any, saved: Any, given: Any = None) -> Any:
    """``state`` with each `_InModel` replaced by ``given``'s tensor in its place where that holds the
    values the checkpoint's digest names, else by the ``saved`` network's (which must)."""
    tensors = tree_flatten(saved)[0]
    others = tree_flatten(given)[0] if given is not None else []

    def restored(leaf: _InModel) -> torch.Tensor:
        for network in (others, tensors):
            found = network[leaf.index] if leaf.index < len(network) else None
            if isinstance(found, torch.Tensor) and _digest(found) == leaf.digest:
                return found
        raise ValueError(
            "the checkpoint's network file no longer holds the values its state names (another run saved "
            "checkpoints under the same path); resume from a checkpoint whose files belong together"
        )

    leaves, structure = tree_flatten(state)
    return tree_unflatten([restored(leaf) if isinstance(leaf, _InModel) else leaf for leaf in leaves], structure)


def resume_sinks(checkpoint: dict, sinks: Any) -> None:
    """Give each of ``sinks`` (new sinks writing where those of the saved run did, in the same order)
    its position in ``checkpoint`` (as `load_checkpoint` returns it, saved by `Checkpoints`)."""
    sinks = list(sinks)
    positions = checkpoint.get("extra", {}).get("sinks") if isinstance(checkpoint, dict) else None
    if positions is None:
        raise ValueError("the checkpoint holds no sinks' positions: it was not saved by Checkpoints")
    if len(positions) != len(sinks):
        raise ValueError(f"the checkpoint holds the positions of {len(positions)} sinks, but {len(sinks)} were given")
    for sink, position in zip(sinks, positions):
        if not callable(getattr(sink, "resume", None)):
            raise TypeError(f"{type(sink).__name__} cannot resume a run (it has no resume())")
        sink.resume(position)
