"""What every `mlffd` command shares: the two consoles and small parsing / printing helpers."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from mlff_distiller.errors import InputError

console = Console()
err_console = Console(stderr=True)


def floats(text: str | None, name: str) -> list[float] | None:
    """Comma-separated numbers of option ``--name``, or None when it was not given."""
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--{name}: expected comma-separated numbers, got {text!r}") from None


def json_cell(value) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def print_summary(summary: dict, as_json: bool, title: str) -> None:
    """A flat summary dict as JSON, or as a two-column table."""
    if as_json:
        console.print_json(json.dumps(summary, default=str))
        return
    table = Table(title=title, show_header=False)
    for key, value in summary.items():
        table.add_row(key, value if isinstance(value, str) else json_cell(value))
    console.print(table)
