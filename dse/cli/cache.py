"""`dse cache export FILE` / `dse cache import FILE`: share the score cache between machines as one tar file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dse.cli.console import plural
from dse.cli.options import CacheDirOption

ArchiveArgument = Annotated[Path, typer.Argument(help="The cache archive (a tar file)")]


def export(archive: ArchiveArgument, cache_dir: CacheDirOption = None) -> None:
    """Write every trained weight set and score file of the cache into one tar file."""
    from dse.core.output import check_output_file
    from nets import default_cache_dir
    from nets.scores._transfer import export_cache

    check_output_file(archive, "FILE")
    root = cache_dir or default_cache_dir()
    typer.echo(f"exported {plural(export_cache(root, archive), 'file')} from {root} to {archive}")


def import_(archive: ArchiveArgument, cache_dir: CacheDirOption = None) -> None:
    """Merge a cache archive into the cache, after checking every file in it."""
    from dse.core.output import check_output_dir
    from nets import default_cache_dir
    from nets.scores._transfer import import_cache

    root = cache_dir or default_cache_dir()
    check_output_dir(root, "--cache-dir")
    typer.echo(f"imported {plural(import_cache(root, archive), 'new file')} into {root}")
