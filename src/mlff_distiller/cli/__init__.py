"""`mlffd`: thin command line over the library. Parse, load config, call the library.

This module builds the command tree; the commands live in one module per pipeline stage:
:mod:`.structures` (generate, teachers), :mod:`.data` (label, data ...), :mod:`.training`
(info, train, sweep), :mod:`.validation` (evaluate, md, card), :mod:`.deployment` (export,
quantize, bench) and :mod:`.pipeline` (distill, zoo). Heavy libraries are imported inside the
command bodies, so `mlffd --help` starts fast.

User errors (:class:`InputError`) are printed as one clear line, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from mlff_distiller.cli import data, deployment, pipeline, structures, training, validation
from mlff_distiller.cli._common import err_console
from mlff_distiller.errors import InputError

app = typer.Typer(
    name="mlffd",
    help="Distil foundation force fields into small, fast PaiNN students, and prove them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Distil foundation force fields into small, fast PaiNN students, and prove them."""


# Registration order is the order of `mlffd --help` (typer lists the `data` group last):
# `info` first, then the pipeline top to bottom.
app.command()(training.info)
app.command()(structures.generate)
app.command()(structures.teachers)

data_app = typer.Typer(help="Inspect, split, merge, filter, import and export labeled datasets.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")
app.command()(data.label)
data_app.command("info")(data.data_info)
data_app.command("split")(data.data_split)
data_app.command("merge")(data.data_merge)
data_app.command("filter")(data.data_filter)
data_app.command("import")(data.data_import)
data_app.command("export")(data.data_export)

app.command()(training.train)
app.command()(training.sweep)
app.command()(validation.evaluate)
app.command()(validation.md)
app.command()(validation.card)
app.command("export")(deployment.export_cmd)
app.command()(deployment.quantize)
app.command()(deployment.bench)
app.command()(pipeline.distill)

zoo_app = typer.Typer(help="The pretrained students shipped with the package.",
                      no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
zoo_app.command("list")(pipeline.zoo_list)
zoo_app.command("release")(pipeline.zoo_release)


def main() -> None:
    """Console-script entry point: run the app, print user errors without a traceback."""
    try:
        app()
    except InputError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
