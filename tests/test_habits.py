"""Habits that keep the core fit for vmap, grad, compile and CUDA graphs.

A host synchronisation in ``sapicore/functional`` carries a ``# sync-ok: why`` comment on a line of
its statement.
"""

import ast
import re
from pathlib import Path

import sapicore.functional

CORE = Path(sapicore.functional.__file__).parent

#: calls that copy a tensor's value to the host (a synchronisation on a GPU, a graph break when compiled)
SYNC = re.compile(
    r"\.item\(\)|\.tolist\(\)|\.cpu\(\)|\.numpy\(\)|(?<![\w.])torch\.nonzero\(|\.nonzero\(\)"
    r"|\bbool\(\s*(torch\.|\()|\b(int|float)\([^()]*\.(max|min|sum|item)\(\)"
)


def _statement_spans(source: str) -> list[tuple[int, int]]:
    """(first, last) line of every statement; a compound statement's span is its header."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.stmt):
            body = getattr(node, "body", None)
            last = (
                body[0].lineno - 1
                if isinstance(body, list) and body and isinstance(body[0], ast.stmt)
                else node.end_lineno
            )
            spans.append((node.lineno, max(node.lineno, last)))
    return spans


def unmarked(source: str) -> list[tuple[int, str]]:
    """(first line, text) of each statement that synchronises with the host and has no sync-ok marker."""
    lines, found = source.splitlines(), []
    for first, last in sorted(set(_statement_spans(source))):
        span = lines[first - 1 : last]
        code = " ".join(line.split("#", 1)[0].strip() for line in span)
        if SYNC.search(code) and not any("# sync-ok" in line for line in span):
            found.append((first, lines[first - 1].strip()))
    return found


def test_the_checker_flags_an_unmarked_statement_and_accepts_a_marked_one():
    source = "def f(x):\n    if bool(\n        (x > 0).all()\n    ):\n        return x.item()\n    y = int(\n        x.max()  # sync-ok: a test\n    )\n"
    assert [number for number, _ in unmarked(source)] == [2, 5]  # the if header and the return, not the marked int


def test_host_synchronisations_in_the_functional_core_are_marked():
    found = [
        f"{path.relative_to(CORE)}:{number}: {line}"
        for path in sorted(CORE.rglob("*.py"))
        for number, line in unmarked(path.read_text())
    ]
    assert not found, "host synchronisations without a '# sync-ok: why' marker:\n" + "\n".join(found)


def test_the_pattern_finds_what_it_looks_for():
    for line in (
        "x.item()",
        "v.tolist()",
        "bool(torch.isfinite(w).all())",
        "bool((w < 0).any())",
        "int(steps.max())",
        "torch.nonzero(spikes)",
        "spikes.cpu()",
    ):
        assert SYNC.search(line), line
    for line in ("torch.nonzero_static(spikes, size=4)", "bool(compiled)", "int(delays)", "float(dt)"):
        assert not SYNC.search(line), line


def test_importing_the_package_leaves_the_compiler_unloaded():
    """torch's compiler (dynamo, inductor, sympy) costs 1.4 s and 150 MB to import: a process that
    never compiles (a CLI call, an eager run, a rank of a partition) should not pay for it."""
    import subprocess
    import sys

    code = (
        "import sys, sapicore, sapicore.functional, sapicore.networks, sapicore.cli\n"
        "print([m for m in ('torch._dynamo', 'torch._inductor', 'sympy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
