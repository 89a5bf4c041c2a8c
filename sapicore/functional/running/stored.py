"""Compiled chunks kept on disk: a second process running the same network does not compile again.

On the CPU, ``simulate(fast=True)`` exports its chunk of steps with ``torch.export``, compiles it
ahead of time with inductor (AOTInductor) into a package, and keeps the package under
``$SAPICORE_COMPILE_CACHE`` (default ``~/.cache/sapicore/chunks``, or under ``$XDG_CACHE_HOME``;
``off`` keeps nothing and compiles with ``torch.compile`` as before). A later run, in this process
or another, whose chunk is the same loads the package in milliseconds instead of compiling it
again (seconds to minutes), and calls it with less overhead per chunk than ``torch.compile``.

A package is found by a hash of everything its code depends on (`chunk_key`): the run's structure
down to every Python number and every tensor's shape, dtype and device (not the tensors' values,
which are the package's inputs), where each model class is defined, the recorded names, the
chunk's length and record interval, dt, the versions of torch, Python and Sapicore, the C++ source
of the propagation kernel and the CPU's vector instructions. Beside it, ``sources.json`` lists the
Python files whose code ran while the chunk was exported (Sapicore's, the user's model classes',
any library's except torch and the standard library) with a hash of each: when one has changed
since, the chunk is compiled again and the package replaced. Packages are written under a
temporary name and renamed, so a process killed while compiling leaves no broken package behind.

Runs that cannot be keyed this way compile with ``torch.compile`` as before: input functions of
time (their results may depend on anything), classes defined without a file (a notebook) or inside
a function, gradients, CUDA (CUDA graphs need ``torch.compile``) and runs inside a ``torch.func``
transform. Sweeps are kept as single runs are, with their lane count, vmap's randomness and input
lanes in the key. The strides of the model's and the inputs' tensors are in the key too, and each
layout the state takes in a run (a sweep's lanes start as views of one state, then take the layout
inductor returns) has a package of its own, in a folder named by the key and that layout.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree
from torch.utils._pytree import tree_flatten, tree_leaves, tree_unflatten

from ..propagation import kernels
from ..propagation.kernel_cache import user_cache

__all__ = ["cache_root", "chunk_key", "layout", "StoredChunk", "ChunkFailed"]

LOG = logging.getLogger("sapicore.compile")
PACKAGE, SOURCES = "chunk.pt2", "sources.json"


def cache_root() -> Path | None:
    """The folder of stored chunks (``$SAPICORE_COMPILE_CACHE``), or None when it is ``off`` or names
    something that is not a folder (said once, in a warning: chunks then compile in every process)."""
    if os.environ.get("SAPICORE_COMPILE_CACHE", "").lower() in ("off", "0", "none", "false"):
        return None
    root = user_cache("SAPICORE_COMPILE_CACHE", "chunks")
    if root.exists() and not root.is_dir():
        if str(root) not in _WARNED:
            _WARNED.add(str(root))
            warnings.warn(
                f"SAPICORE_COMPILE_CACHE={root} is not a folder, so compiled chunks are not kept on disk; "
                "set it to a folder, or to 'off'",
                RuntimeWarning,
                stacklevel=2,
            )
        return None
    return root


_WARNED: set[str] = set()


class _Unkeyable(Exception):
    """A value whose meaning a key cannot capture (an object known only by its id, a function)."""


def _text(value: Any) -> str:
    """``value`` (a structure described by ``stepper.structure_key``) as text that means the same in
    every process, or `_Unkeyable`."""
    if isinstance(value, tuple):
        return "(" + ",".join(_text(item) for item in value) + ")"
    if isinstance(value, type):
        module = sys.modules.get(value.__module__)
        where = getattr(module, "__file__", None)
        if where is None or "<locals>" in value.__qualname__:
            raise _Unkeyable(f"{value.__qualname__} is defined without a file or inside a function")
        return f"{value.__module__}.{value.__qualname__}@{Path(where).resolve()}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, enum.Enum):
        return f"{_text(type(value))}.{value.name}"
    raise _Unkeyable(f"a {type(value).__name__} ({value!r:.60})")


@functools.cache
def _environment() -> tuple[str, ...]:
    """What every key covers beside the run's structure (worked out once per process: the C++ source
    it hashes is that of the kernel library this process loaded)."""
    from ... import __version__

    sources = sorted(Path(kernels.__file__).parent.joinpath("csrc").glob("*"))
    return (
        torch.__version__,
        str(torch.version.git_version),
        str(Path(torch.__file__).resolve().parent),
        __version__,
        platform.python_version(),
        platform.machine(),
        torch.backends.cpu.get_cpu_capability(),
        *(hashlib.sha256(path.read_bytes()).hexdigest() for path in sources if path.is_file()),
    )


def chunk_key(structure: tuple, settings: Sequence[Any]) -> str | None:
    """The hash naming a chunk's package (``structure``: `stepper.structure_key` of the run's model,
    state and inputs; ``settings``: numbers and names the chunk's code closes over), or None when
    the run cannot be keyed (see the module's docstring). Remembered per structure: a loop of short
    runs asks for the same key at every call (describing the structure as text took 2 ms)."""
    try:
        remembered = (structure, tuple(settings))
        hash(remembered)
    except TypeError:
        remembered = None
    if remembered is not None and remembered in _KEYS:
        return _KEYS[remembered]
    try:
        text = _text((structure, tuple(settings)))
    except _Unkeyable as why:
        LOG.debug("compiled chunk not kept on disk: %s", why)
        key = None
    else:
        key = hashlib.sha256("\0".join([text, *_environment()]).encode()).hexdigest()[:24]
    if remembered is not None:
        _remember(_KEYS, remembered, key, MOST_REMEMBERED)
    return key


def _remember(cache: dict, key: Any, value: Any, most: int) -> Any:
    """Keep ``value`` under ``key``, dropping the oldest entry beyond ``most``; return ``value``."""
    if len(cache) >= most:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


_KEYS: dict[tuple, str | None] = {}  # (structure, settings) -> its key
_DIGESTS: dict[tuple, str] = {}  # (path, modification time, size) -> the file's hash
_RUNNERS: dict[tuple, Callable] = {}  # (package path, modification time, size, thread) -> its runner
MOST_REMEMBERED = 256


def _skipped_folders() -> tuple[str, ...]:
    """Code that the key covers by version (torch, the standard library)."""
    paths = sysconfig.get_paths()
    folders = {str(Path(torch.__file__).resolve().parent), paths["stdlib"], paths["platstdlib"]}
    return tuple(sorted(folder.rstrip(os.sep) + os.sep for folder in folders))


def _hash_file(path: str) -> str | None:
    """The file's hash, read again only when its modification time or size changed."""
    try:
        info = os.stat(path)
        mark = (path, info.st_mtime_ns, info.st_size)
        if mark in _DIGESTS:
            return _DIGESTS[mark]
        return _remember(_DIGESTS, mark, hashlib.sha256(Path(path).read_bytes()).hexdigest(), MOST_REMEMBERED)
    except OSError:
        return None


def _sources_unchanged(listed: dict[str, str]) -> bool:
    return all(_hash_file(path) == digest for path, digest in listed.items())


MOST_PACKAGES = 128  # about 2 MB each at COBA-4k
MOST_RUNNERS = 16  # packages kept loaded in a process
MOST_LAYOUTS = 3  # packages of one run, one per layout of its state


def _prune(root: Path, keep: Path) -> None:
    """Remove the least recently written packages beyond `MOST_PACKAGES` (a loop over Python-number
    parameters compiles one package per value)."""
    folders = [folder for folder in root.iterdir() if folder.is_dir() and folder != keep]
    if len(folders) < MOST_PACKAGES:
        return
    written = lambda folder: (folder / SOURCES).stat().st_mtime if (folder / SOURCES).exists() else 0.0  # noqa: E731
    for folder in sorted(folders, key=written)[: len(folders) - MOST_PACKAGES + 1]:
        shutil.rmtree(folder, ignore_errors=True)


class _Exported(torch.nn.Module):
    """A chunk over flat tensors, for ``torch.export``: the tensors of ``(model, state, xs, t0)`` in
    and ``(*state leaves, *records in name order[, NaN-watch sum])`` out."""

    def __init__(self, chunk: Callable, leaves: list, slots: list[int], spec: Any, names: tuple[str, ...]) -> None:
        super().__init__()
        self.chunk, self.slots, self.spec, self.names = chunk, slots, spec, names
        given = set(slots)
        self.static = [None if index in given else leaf for index, leaf in enumerate(leaves)]
        self.watched: bool | None = None

    def forward(self, *tensors: torch.Tensor) -> tuple:
        leaves = list(self.static)
        for index, tensor in zip(self.slots, tensors):
            leaves[index] = tensor
        model, state, xs, t0 = tree_unflatten(leaves, self.spec)
        new_state, records, total = self.chunk(model, state, xs, t0)
        out, out_spec = tree_flatten(new_state)
        if out_spec != tree_flatten(state)[1] or not all(isinstance(leaf, torch.Tensor) for leaf in out):
            raise _Unkeyable("the chunk's state changes structure or holds values that are not tensors")
        # a leaf the chunk makes as a broadcast view (a constant, say) is returned dense, as the state came
        # in: else the next chunk would see another layout and compile a second package for it; leaves
        # passed through (a sweep's shared tables) keep theirs
        given = {id(tensor) for tensor in tensors}
        out = [leaf.contiguous() if id(leaf) not in given and _broadcast(leaf) else leaf for leaf in out]
        if tuple(records) != self.names:
            raise _Unkeyable(f"the chunk records {tuple(records)}, expected {self.names}")
        self.watched = total is not None
        return (*out, *records.values(), *((total,) if total is not None else ()))


def _broadcast(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` repeats its values along an axis (a stride of 0 on an axis longer than 1)."""
    return any(stride == 0 and size > 1 for stride, size in zip(tensor.stride(), tensor.shape))


class StoredChunk:
    """A chunk (``(model, state, xs, t0) -> (state, records, NaN-watch sum)``) compiled by AOTInductor
    and kept in the folder ``root / key``: loaded from there when its sources are unchanged, else
    exported and compiled (on the first call, with the call's arguments as the example).

    Raises from the first call whatever export or compilation raised (the caller falls back).
    """

    def __init__(
        self, chunk: Callable, names: tuple[str, ...], root: Path, key: str, steps: int, unlocked: bool = False
    ) -> None:
        self.chunk, self.names, self.root, self.key, self.steps = chunk, names, root, key, steps
        self.unlocked = unlocked  # run with the interpreter lock released (see `_unlocked_runner`)
        self.folder = root / key  # of the package for the state's layout of the latest call
        self.runners: dict[tuple, Callable] = {}  # the state's strides -> the package compiled for them
        self.state_spec: Any = None
        self.state_count = 0
        self.watched = False
        self.model: Any = None  # the model and state of the latest call, and their tensors
        self.state: Any = None
        self.model_tensors: list[torch.Tensor] = []
        self.state_tensors: list[torch.Tensor] = []

    def _load(self) -> Callable:
        """The package's runner, a function of the flat list of input tensors. Loaded by torch's C++
        loader, one runner per thread, and kept for the process's next runs while the package file
        is unchanged (loading took 2 ms of every short run); importing ``torch._inductor`` for its
        Python loader would take a second."""
        path = str(self.folder / PACKAGE)
        info = os.stat(path)
        mark = (path, info.st_mtime_ns, info.st_size, threading.get_ident(), self.unlocked)
        if mark not in _RUNNERS:
            _remember(_RUNNERS, mark, _unlocked_runner(path) if self.unlocked else self._loaded(path), MOST_RUNNERS)
        return _RUNNERS[mark]

    @staticmethod
    def _loaded(path: str) -> Callable:
        loader = getattr(torch._C._aoti, "AOTIModelPackageLoader", None)
        if loader is not None:
            return loader(path, "model", True, 1, -1).run
        from torch._inductor import aoti_load_package

        runner = aoti_load_package(path)
        return lambda flat: runner(*flat)

    def _compile(self, model: Any, state: Any, xs: Any, t0: torch.Tensor) -> None:
        from torch._inductor import aoti_compile_and_package

        kernels.key_compile_caches()
        leaves, spec = tree_flatten((model, state, xs, t0))
        slots = [index for index, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
        module = _Exported(self.chunk, leaves, slots, spec, self.names)
        skipped, ran = _skipped_folders(), set()

        def note(frame: Any, event: str, arg: Any) -> None:
            if event == "call":
                ran.add(frame.f_code.co_filename)

        if sys.getprofile() is not None:  # a profiler of the user's: its hook cannot be shared
            raise RuntimeError("a profiler is active, so the files the chunk's code comes from cannot be listed")
        sys.setprofile(note)
        try:
            start = time.perf_counter()
            examples = _tensors(model) + _tensors(state) + _tensors(xs) + [t0]  # as calls pass them
            exported = torch.export.export(module, tuple(examples), strict=False)
        finally:
            sys.setprofile(None)
        LOG.debug("exported in %.1f s", time.perf_counter() - start)
        files = sorted(path for path in ran if not path.startswith("<") and not path.startswith(skipped))
        sources = {path: _hash_file(path) for path in files}
        self.folder.mkdir(parents=True, exist_ok=True)
        _prune(self.folder.parent, keep=self.folder)
        for stale in [*self.folder.glob(".chunk-*"), *self.folder.glob(".sources-*")]:
            if time.time() - stale.stat().st_mtime > 3600:  # left by a process killed while compiling
                stale.unlink(missing_ok=True)
        handle, partial = tempfile.mkstemp(dir=self.folder, prefix=".chunk-", suffix=".pt2")
        os.close(handle)
        try:
            with warnings.catch_warnings():  # torch's own pickling of tree specs, not the user's concern
                warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec")
                aoti_compile_and_package(exported, package_path=partial, inductor_configs=kernels.compile_options())
            os.replace(partial, self.folder / PACKAGE)
        finally:
            Path(partial).unlink(missing_ok=True)
        listing = {"watched": module.watched, "names": list(self.names), "sources": sources}
        handle, partial = tempfile.mkstemp(dir=self.folder, prefix=".sources-", suffix=".json")
        with os.fdopen(handle, "w") as file:
            json.dump(listing, file, indent=1)
        os.replace(partial, self.folder / SOURCES)

    def _prepare(self, model: Any, state: Any, xs: Any, t0: torch.Tensor) -> Callable:
        """The runner of the package for ``state``'s layout (``self.folder``), loaded or compiled."""
        start = time.perf_counter()
        listing = self._listing()
        if listing is None:
            LOG.info("compiling chunks of %d steps (fast=True) ...", self.steps)
            self._compile(model, state, xs, t0)
            listing = self._listing()
            if listing is None:
                raise RuntimeError(f"the compiled chunk could not be kept in {self.folder}")
            seconds = time.perf_counter() - start
            LOG.info("compiled in %.1f s, kept in %s", seconds, self.folder, extra={"compile_seconds": seconds})
            run = self._load()
        else:
            try:
                run = self._load()
            except Exception as err:  # a package from another torch build, say: compile it again
                LOG.info("could not load %s (%s); compiling it again", self.folder / PACKAGE, err)
                (self.folder / SOURCES).unlink(missing_ok=True)
                return self._prepare(model, state, xs, t0)
            seconds = time.perf_counter() - start
            LOG.info(
                "compiled chunks of %d steps loaded from %s in %.2f s",
                self.steps,
                self.folder,
                seconds,
                extra={"compile_seconds": seconds},
            )
        self.watched = bool(listing["watched"])
        self.state_spec = tree_flatten(state)[1]
        self.state_count = self.state_spec.num_leaves
        self.rebuild = rebuilder(self.state_spec)
        return run

    def _listing(self) -> dict | None:
        """The package's listing when the package is there and its sources are unchanged."""
        try:
            listing = json.loads((self.folder / SOURCES).read_text())
        except (OSError, ValueError):
            return None
        if (
            not (self.folder / PACKAGE).is_file()
            or listing.get("names") != list(self.names)
            or not _sources_unchanged(listing.get("sources", {}))
        ):
            return None
        return listing

    def __call__(self, model: Any, state: Any, xs: Any, t0: torch.Tensor) -> tuple:
        # a run calls with one model throughout and with the state the previous call returned:
        # their tensors are listed once (walking the trees took 60 of a COBA-4k chunk's 400 us)
        if model is not self.model:
            self.model, self.model_tensors = model, _tensors(model)
        if state is not self.state:
            self.state_tensors = _tensors(state)
        strides = tuple(leaf.stride() for leaf in self.state_tensors)
        run = self.runners.get(strides)
        if run is None:
            if len(self.runners) >= MOST_LAYOUTS:  # a state that keeps changing layout: made contiguous
                self.state_tensors = [leaf.contiguous() for leaf in self.state_tensors]
                strides = tuple(leaf.stride() for leaf in self.state_tensors)
                state = tree_unflatten(self.state_tensors, tree_flatten(state)[1])
            run = self.runners.get(strides)
        if run is None:
            # the state's first layout (a sweep's lanes start as views of one state) and the one the
            # package returns it in (inductor's choice) each get a package: forcing one layout
            # copied the state at every chunk and slowed a 64-lane sweep's package by a fifth
            digest = hashlib.sha256(repr(strides).encode()).hexdigest()[:8]
            self.folder = self.root / f"{self.key}-{digest}"
            run = self.runners[strides] = self._prepare(model, state, xs, t0)
        try:
            out = run([*self.model_tensors, *self.state_tensors, *_tensors(xs), t0])
        except Exception as err:  # the package was compiled and loaded: running it failed (an exchange, say)
            raise ChunkFailed(str(err)) from err
        if self.unlocked:  # the steps' all-gathers ran inside the graph
            model.exchange.count_graph_steps(self.steps)
        count, recorded = self.state_count, len(self.names)
        self.state_tensors = list(out[:count])
        self.state = self.rebuild(self.state_tensors)
        records = dict(zip(self.names, out[count : count + recorded]))
        return self.state, records, out[count + recorded] if self.watched else None


class ChunkFailed(RuntimeError):
    """A compiled chunk that loaded failed while it ran (an exchange with a rank that died, say): the
    run fails with it, rather than compile the chunk again another way."""


class _Package:
    """A package loaded by the kernel library's C++ loader (``csrc/package.cpp``); closed with it."""

    def __init__(self, library: Any, path: str) -> None:
        self.library = library
        self.handle = library.sapicore_package_open(path.encode())
        if not self.handle:
            raise RuntimeError(f"cannot load {path}: {library.sapicore_package_error().decode()}")
        self._closed = weakref.finalize(self, library.sapicore_package_close, ctypes.c_void_p(self.handle))

    def __call__(self, flat: list[torch.Tensor]) -> list[torch.Tensor]:
        return torch.ops.sapicore.run_package(self.handle, flat)


def _unlocked_runner(path: str) -> Callable:
    """A runner of the package at ``path`` that releases Python's interpreter lock while the package
    runs (torch releases it around an op called from Python: ``sapicore::run_package``). A chunk whose graph waits for gloo all-gathers needs that: gloo's worker
    thread takes the lock to let go of a finished all-gather's tensors where Python holds one of them
    (or the tensor a view of them is cut from), and torch's own loader holds the lock for the whole
    run, so the two would wait for each other."""
    library = kernels.library()
    if library is None or not hasattr(library, "sapicore_package_open"):
        raise RuntimeError(
            "a chunk runs without the interpreter lock through the kernel library built with torch 2.6 or later, "
            "which this environment does not have"
        )
    if not getattr(library, "_sapicore_package_typed", False):
        library.sapicore_package_open.restype = ctypes.c_void_p
        library.sapicore_package_open.argtypes = [ctypes.c_char_p]
        library.sapicore_package_error.restype = ctypes.c_char_p
        library.sapicore_package_close.argtypes = [ctypes.c_void_p]
        library._sapicore_package_typed = True
    return _Package(library, path)


def rebuilder(spec: _pytree.TreeSpec) -> Callable[[list], Any]:
    """A function of a list of leaves that rebuilds ``spec``'s tree, as ``tree_unflatten(leaves,
    spec)`` does, in one call that constructs each node with its unflatten function: torch's walk
    of the spec took 12 us per chunk for COBA-4,000's state, 6% of the chunk's time."""
    names: dict[str, Any] = {}
    leaves = iter(range(spec.num_leaves))

    def expression(node: _pytree.TreeSpec) -> str:
        if node.is_leaf():
            return f"leaves[{next(leaves)}]"
        index = len(names) // 2
        names[f"make{index}"] = _pytree.SUPPORTED_NODES[node.type].unflatten_fn
        names[f"context{index}"] = node.context
        children = ", ".join(expression(child) for child in node.children())
        return f"make{index}([{children}], context{index})"

    try:
        source = f"def rebuild(leaves):\n    return {expression(spec)}\n"
    except KeyError:  # a node type torch unflattens in its own way: its walk, then
        return lambda leaves: tree_unflatten(leaves, spec)
    exec(compile(source, "<sapicore state rebuilder>", "exec"), names)
    return names["rebuild"]


def _tensors(tree: Any) -> list[torch.Tensor]:
    """The tensors of ``tree``, in order, in their own layout (a model's and an input's are in the key,
    `layout`; a state's name its package's folder): a table shared by every lane (a view of
    stride 0) is read in place, not copied once per lane."""
    return [leaf for leaf in tree_leaves(tree) if isinstance(leaf, torch.Tensor)]


def layout(tree: Any) -> tuple:
    """The strides of ``tree``'s tensors: a package reads its inputs with the strides it was
    compiled for, and does not check them."""
    return tuple(leaf.stride() for leaf in tree_leaves(tree) if isinstance(leaf, torch.Tensor))
