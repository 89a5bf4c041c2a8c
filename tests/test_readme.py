"""The Python snippets of the README and of the documentation site run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks that write files (e.g. net.nir) write them here
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["rates"].shape == (6,)


def test_the_documentation_sites_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    pytest.importorskip("nir")
    monkeypatch.chdir(tmp_path)
    pages = sorted((README.parent / "docs").rglob("*.md"))
    blocks = {page: re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S) for page in pages}
    assert sum(len(found) for found in blocks.values()) >= 10
    for page, found in blocks.items():
        namespace: dict = {}  # the blocks of one page follow on from each other
        for block in found:
            if block.lstrip().startswith("--8<--"):  # a snippet of an example file, run by its own test
                continue
            exec(compile(block, str(page), "exec"), namespace)
