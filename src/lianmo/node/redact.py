"""What a party tells outside itself about a failure: no local paths, ids or cell values.

The coordinator (job status), the audit log and anyone they are shown to read
:func:`public_error`; the full text stays in the party's node log and its own
``status.json``. README promises that the coordinator sees a data set's name only.
"""

from __future__ import annotations

import re
from pathlib import Path

from lianmo.config import PartyConfig
from lianmo.errors import LianmoError

# An absolute path of two or more parts (/srv/data/x.csv, C:\data\x.csv, ~/x/y), not a
# URL (ray://head), a phase name (lr/train) or a fraction (0/1): no letter, digit, ':'
# or '/' may come right before it.
_PATH = re.compile(r"(?<![\w:/\\.~-])(?:~|[A-Za-z]:)?(?:[/\\][\w.+@~-]+){2,}[/\\]?")
HIDDEN_PATH = "<local path>"


def public_error(config: PartyConfig, dataset: str | None, exc: BaseException) -> str:
    """The text of ``exc`` a party may send to the coordinator and keep in its audit log.

    A :class:`~lianmo.errors.LianmoError` gives its own public form (a ``DataError``
    names party, data set ``dataset``, column and row); any other exception is an
    internal error named by its class only, since its text may hold anything. What is
    left is cleared of the party's local paths.
    """
    if not isinstance(exc, LianmoError):
        return (
            f"internal error ({type(exc).__name__}) at party '{config.name}'; its node log "
            "has the details"
        )
    text = exc.public_text(dataset) or str(exc)
    return without_paths(config, text)


def without_paths(config: PartyConfig, text: str) -> str:
    """``text`` with the party's data files named by data set and every other path hidden."""
    for name, entry in sorted(config.datasets.items(), key=lambda item: -len(str(item[1].path))):
        for form in _forms(entry.path, bare=bool(entry.path.suffix)):
            text = text.replace(f"file '{form}'", f"data set '{name}'")
            text = text.replace(form, f"data set '{name}'")
    for folder in (config.state_dir, config.cert.parent, config.key.parent, config.ca.parent):
        for form in _forms(folder, bare=True):
            if form == Path(form).anchor:
                continue  # the file system's root would match every slash
            # anything under the folder; the folder alone only when spelt as a path
            inside = r"(?:[/\\][^\s'\",;:)]*)" + ("?" if _is_path(form) else "")
            text = re.sub(rf"(?<![\w.-]){re.escape(form)}{inside}", HIDDEN_PATH, text)
    return _PATH.sub(HIDDEN_PATH, text)


def _forms(path: Path, *, bare: bool) -> list[str]:
    """How ``path`` may be spelt in a message, longest first: absolute, and as configured
    if that is a path (or ``bare``: a plain name such as ``data.csv`` counts too)."""
    plain = str(path)
    forms = {str(path.resolve())}
    if plain not in (".", "..") and (bare or _is_path(plain)):
        forms.add(plain)
    return sorted(forms, key=len, reverse=True)


def _is_path(text: str) -> bool:
    return "/" in text or "\\" in text
