"""Habits that keep the core fit for vmap, grad, compile and CUDA graphs."""

import re
from pathlib import Path

import sapicore.functional

CORE = Path(sapicore.functional.__file__).parent

#: calls that copy a tensor's value to the host (a synchronisation on a GPU, a graph break when compiled)
SYNC = re.compile(
    r"\.item\(\)|\.tolist\(\)|\.cpu\(\)|\.numpy\(\)|(?<![\w.])torch\.nonzero\(|\.nonzero\(\)"
    r"|\bbool\((torch\.|\()|\b(int|float)\([^()]*\.(max|min|sum|item)\(\)"
)


def test_host_synchronisations_in_the_functional_core_are_marked():
    unmarked = []
    for path in sorted(CORE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if SYNC.search(code) and "# sync-ok" not in line:
                unmarked.append(f"{path.relative_to(CORE)}:{number}: {line.strip()}")
    assert not unmarked, "host synchronisations without a '# sync-ok: why' marker:\n" + "\n".join(unmarked)


def test_the_pattern_finds_what_it_looks_for():
    for line in ("x.item()", "v.tolist()", "bool(torch.isfinite(w).all())", "bool((w < 0).any())", "int(steps.max())",
                 "torch.nonzero(spikes)", "spikes.cpu()"):
        assert SYNC.search(line), line
    for line in ("torch.nonzero_static(spikes, size=4)", "bool(compiled)", "int(delays)", "float(dt)"):
        assert not SYNC.search(line), line
