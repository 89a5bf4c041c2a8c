"""Where and how the CPU kernel is built: one build per (source, torch, Python, compiler flags), never a hang.

The build goes to ``$SAPICORE_KERNEL_CACHE`` (default ``~/.cache/sapicore/kernels``, or under
``$XDG_CACHE_HOME``), in a folder named by a hash of everything the library depends on: the C++
source, the torch and Python versions and the compiler flags. Environments that differ get folders of
their own, so alternating between them never rebuilds; environments that agree share one build. The
source is copied into that folder, so its path (which differs between checkouts) does not reach the
build files.

One process builds at a time: the builder holds an ``flock`` on ``sapicore.lock`` in the folder,
which the system releases when the process ends, however it ends. torch's own ``lock`` file, which a
process killed mid-build leaves behind (and which would make every later build wait forever), is
therefore stale whenever Sapicore holds the ``flock``, and is removed with a message.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; torch's own lock only
    fcntl = None

__all__ = ["cache_root", "build_directory", "build_lock", "load_library"]


def cache_root() -> Path:
    """The folder that holds every build (``$SAPICORE_KERNEL_CACHE`` if set)."""
    if os.environ.get("SAPICORE_KERNEL_CACHE"):
        return Path(os.environ["SAPICORE_KERNEL_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sapicore" / "kernels"


def build_directory(name: str, source: Path, flags: list[str]) -> Path:
    """The build folder of ``source`` for this torch, this Python and these flags."""
    import torch

    key = hashlib.sha256()
    for part in (source.read_bytes(), torch.__version__, platform.python_version(), " ".join(flags)):
        key.update(part if isinstance(part, bytes) else part.encode())
        key.update(b"\0")
    return cache_root() / f"{name}-{key.hexdigest()[:16]}"


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's build lock (waiting for a build in progress); remove a stale torch lock."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sapicore.lock", "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released by the system if this process dies
        try:
            stale = folder / "lock"
            if fcntl is not None and stale.exists():
                print(f"sapicore: removing a stale build lock left by an interrupted build: {stale}", file=sys.stderr)
                stale.unlink(missing_ok=True)
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def load_library(name: str, source: Path, flags: list[str]) -> None:
    """Build (if this folder has no build yet, saying so) and load the operator library."""
    from torch.utils import cpp_extension

    folder = build_directory(name, source, flags)
    with build_lock(folder):
        copy = folder / source.name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            shutil.copyfile(source, copy)
        fresh = not any(folder.glob("*.so"))
        if fresh:
            print(
                f"sapicore: building the CPU spike propagation kernel in {folder} (about a minute, once)",
                file=sys.stderr,
            )
        start = time.perf_counter()
        cpp_extension.load(
            name, sources=[str(copy)], extra_cflags=flags, build_directory=str(folder), is_python_module=False
        )
        if fresh:
            print(f"sapicore: kernel built in {time.perf_counter() - start:.0f} s", file=sys.stderr)
