"""Where and how the CPU kernel is built: one build per environment, loaded without a lock, never a hang.

The build goes to ``$SAPICORE_KERNEL_CACHE`` (default ``~/.cache/sapicore/kernels``, or under
``$XDG_CACHE_HOME``), in a folder named by a hash of everything the build depends on
(`build_key`): the C++ source, the torch version and install location, the include and library
paths torch compiles with, the C++ compiler (its path, size and date), the flags and the Python ABI.
Environments that differ in any of them get folders of their own, so alternating between two
virtual environments never rebuilds; environments that agree share one build. The source is copied
into that folder, so its path (which differs between checkouts) does not reach the build files.

A finished build leaves ``complete.txt`` beside the library; from then on the library is loaded
directly, without a lock and without asking ninja whether anything changed, so a prebuilt cache on
a read-only disk works. Only a missing build takes the folder's lock (an ``flock`` on
``sapicore.lock``, which the system releases when the process ends, however it ends): one process
builds, the others wait and say so in one line. torch's own ``lock`` file, which a process killed
mid-build leaves behind (and which would make every later build wait forever), is stale whenever
Sapicore holds the ``flock``, and is removed with a message.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; torch's own lock only
    fcntl = None

__all__ = ["user_cache", "cache_root", "build_key", "build_directory", "build_lock", "load_library", "COMPLETE"]

COMPLETE = "complete.txt"  # written last by a successful build: the library it names is whole


def user_cache(variable: str, name: str) -> Path:
    """``$variable`` if set, else ``name`` in Sapicore's cache folder (``~/.cache/sapicore``, or under
    ``$XDG_CACHE_HOME``)."""
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sapicore" / name


def cache_root() -> Path:
    """The folder that holds every build (``$SAPICORE_KERNEL_CACHE`` if set)."""
    return user_cache("SAPICORE_KERNEL_CACHE", "kernels")


def _compiler() -> str:
    """The C++ compiler torch's build would call (``$CXX`` or ``c++``): its resolved path, size and
    modification time, so a changed or upgraded compiler is another build."""
    name = os.environ.get("CXX", "c++")
    found = shutil.which(name)
    if found is None:
        return name
    path = Path(found).resolve()
    stat = path.stat()
    return f"{path} {stat.st_size} {stat.st_mtime_ns}"


def _listed(source: Path | Sequence[Path]) -> list[Path]:
    return [source] if isinstance(source, Path) else list(source)


def build_key(source: Path | Sequence[Path], flags: list[str]) -> list[str]:
    """Everything a build of ``source`` (one C++ file or several) with ``flags`` depends on, as
    strings (the cache folder's hash)."""
    import torch

    # torch's headers and libraries lie in its folder (keyed here): not asked of torch.utils.cpp_extension,
    # whose import warns on every process where a CUDA build of torch finds no CUDA runtime
    return [
        *(path.read_bytes().hex() for path in _listed(source)),
        torch.__version__,
        str(Path(torch.__file__).resolve().parent),
        str(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", "")),
        _compiler(),
        " ".join(flags),
        platform.python_version(),
        sys.implementation.cache_tag or "",
        str(sysconfig.get_config_var("EXT_SUFFIX")),
        str(sysconfig.get_paths().get("include")),
    ]


def build_directory(name: str, source: Path | Sequence[Path], flags: list[str]) -> Path:
    """The build folder of ``source`` (one C++ file or several) for this environment and these flags."""
    key = hashlib.sha256("\0".join(build_key(source, flags)).encode())
    return cache_root() / f"{name}-{key.hexdigest()[:16]}"


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's build lock, waiting (and saying so) while another process builds; remove a
    stale torch lock."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sapicore.lock", "a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(
                    f"sapicore: waiting for another process that is building the CPU kernel in {folder}",
                    file=sys.stderr,
                )
                fcntl.flock(handle, fcntl.LOCK_EX)  # released by the system if that process dies
        try:
            stale = folder / "lock"
            if fcntl is not None and stale.exists():
                print(f"sapicore: removing a stale build lock left by an interrupted build: {stale}", file=sys.stderr)
                stale.unlink(missing_ok=True)
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _finished(folder: Path) -> Path | None:
    """The library of a complete build in ``folder``, or None."""
    marker = folder / COMPLETE
    if not marker.is_file():
        return None
    library = folder / marker.read_text().strip()
    return library if library.is_file() else None


def load_library(name: str, source: Path | Sequence[Path], flags: list[str]) -> Path:
    """Load the operator library of ``source`` (one C++ file or several), building it first if this
    environment has no complete build; return the library's path."""
    import torch

    folder = build_directory(name, source, flags)
    library = _finished(folder)
    if library is None:
        from torch.utils import cpp_extension

        with build_lock(folder):
            library = _finished(folder)  # another process may have built it while this one waited
            if library is None:
                copies = [folder / path.name for path in _listed(source)]
                for path, copy in zip(_listed(source), copies):
                    shutil.copyfile(path, copy)
                print(
                    f"sapicore: building the CPU spike propagation kernel for this environment in {folder} "
                    "(about a minute, once)",
                    file=sys.stderr,
                )
                start = time.perf_counter()
                built = cpp_extension.load(
                    name,
                    sources=[str(copy) for copy in copies],
                    extra_cflags=flags,
                    build_directory=str(folder),
                    is_python_module=False,
                )
                library = Path(built) if isinstance(built, str) else folder / f"{name}.so"
                (folder / COMPLETE).write_text(library.name + "\n")
                print(f"sapicore: kernel built in {time.perf_counter() - start:.0f} s", file=sys.stderr)
                return library  # cpp_extension.load has loaded it
    torch.ops.load_library(str(library))
    return library
