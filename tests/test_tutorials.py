"""Every tutorial page runs as printed and prints what the page says it prints.

A page's Python blocks run in order in one namespace (as a reader pastes them into one session),
in a temporary folder. A block that prints must be followed by a ``text`` block holding its output;
``...`` in that block stands for any text (doctest's ellipsis), and runs of whitespace compare
equal. Blocks that include an example file (``--8<--``) are left to the example's own test.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import re
from pathlib import Path

import pytest

PAGES = sorted((Path(__file__).resolve().parents[1] / "docs" / "tutorials").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
CHECKER = doctest.OutputChecker()
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """(language, code, line) of each fenced block of a page."""
    text = page.read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def test_every_tutorial_page_is_found():
    assert len(PAGES) >= 10 and all(any(lang == "python" for lang, _, _ in blocks(p)) for p in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_a_tutorial_runs_and_prints_what_it_shows(page, tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("nir")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__tutorial__"}
    found = blocks(page)
    for index, (language, code, line) in enumerate(found):
        if language != "python" or code.lstrip().startswith("--8<--"):
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile("\n" * line + code, str(page), "exec"), namespace)  # noqa: S102 - the page's own code
        if not printed.getvalue():
            continue
        shown = found[index + 1] if index + 1 < len(found) else None
        assert shown is not None and shown[0] == "text", (
            f"{page.name}:{line}: the block prints {printed.getvalue()!r} but no text block after it shows it"
        )
        assert CHECKER.check_output(shown[1], printed.getvalue(), FLAGS), (
            f"{page.name}:{shown[2]}: the page shows\n{shown[1]}but the block printed\n{printed.getvalue()}"
        )
