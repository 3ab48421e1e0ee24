"""The data files the product ships (price book, plan catalog, bonus ladder), each of
which an operator may replace with a file of their own."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def read_data_file(package: str, name: str, path: Path | None) -> tuple[str, str]:
    """The text of ``path``, else of the file ``name`` packaged in ``package``, with the
    source to name in error messages."""
    if path is None:
        return name, resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return str(path), path.read_text(encoding="utf-8")
