"""The README's Python quick tour runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_tour_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text.split("## Quick tour (Python)", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README quick tour", "exec"), namespace)  # noqa: S102 - our own docs
    atoms = namespace["atoms"]
    assert (tmp_path / "tiny.safetensors").is_file()
    assert atoms.get_forces().shape == (9, 3)
