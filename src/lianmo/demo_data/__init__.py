"""The credit demo data shipped with lianmo (see README.md in this folder for the source)."""

from __future__ import annotations

import pathlib
from importlib.resources import files

__all__ = ["demo_file"]


def demo_file(name: str) -> pathlib.Path:
    """Return the path of a shipped demo file, e.g. ``demo_file("credit_broker.csv.gz")``.

    Parameters
    ----------
    name : str
        File name inside ``lianmo.demo_data``.

    Returns
    -------
    pathlib.Path
        Path of the installed file.

    Raises
    ------
    FileNotFoundError
        If no demo file has that name; the message lists the files that exist.
    """
    folder = files("lianmo.demo_data")
    resource = folder / name
    if "/" in name or "\\" in name or name.startswith(".") or not resource.is_file():
        available = sorted(p.name for p in folder.iterdir() if p.name.endswith(".csv.gz"))
        raise FileNotFoundError(
            f"no demo file named {name!r} in lianmo.demo_data; available: "
            f"{', '.join(available) or 'none (the package data was not installed)'}"
        )
    return pathlib.Path(str(resource))
