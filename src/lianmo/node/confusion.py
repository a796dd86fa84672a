"""The guest's confusion matrix of a multi-class model, kept in its own job folder.

Only the guest can count it (it holds the labels) and it does not report it: the
coordinator and the audit log get accuracy, log loss and recall per class
(:mod:`lianmo.models.evaluation`); the matrix, which also shows how many rows of each
level the validation split holds, stays at the guest.
"""

from __future__ import annotations

from pathlib import Path

from lianmo.fileio import write_atomic
from lianmo.models.evaluation import Evaluation

#: the training job's (validation rows) and a scoring job's (scored rows with labels)
VALIDATION_FILE = "confusion.csv"
SCORED_FILE = "scored_confusion.csv"


def write_confusion(path: Path, evaluation: Evaluation | None) -> bool:
    """``true\\predicted,0..K-1`` then one line per true class; False (no file) when the
    evaluation has no confusion matrix (not a multi-class model)."""
    if evaluation is None or not evaluation.confusion:
        return False
    k = len(evaluation.confusion)
    lines = ["true\\predicted," + ",".join(str(j) for j in range(k))]
    lines += [f"{i}," + ",".join(map(str, row)) for i, row in enumerate(evaluation.confusion)]
    write_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return True


def read_confusion(path: Path) -> tuple[tuple[int, ...], ...]:
    """The matrix :func:`write_confusion` wrote (for the demo's summary)."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return tuple(tuple(int(c) for c in line.split(",")[1:]) for line in lines if line)
