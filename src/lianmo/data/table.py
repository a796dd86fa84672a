"""Load and validate one party's table of ids, numeric features and optional labels.

The names every caller imports, from the modules that implement them:
:mod:`~lianmo.data.load` (:func:`load_table`, :func:`scan_checked`: the one checked
pass), :mod:`~lianmo.data.rows` (:class:`Table`, in memory), :mod:`~lianmo.data.scan`
(:class:`TableScan`: ids and labels, features read on demand),
:mod:`~lianmo.data.validate` (label and id checks) and :mod:`~lianmo.data.columns`
(finding the named columns); :mod:`~lianmo.data.coding` (missing tokens, categorical
columns and their codes).
"""

from __future__ import annotations

from lianmo.data.coding import MAX_CATEGORIES
from lianmo.data.load import load_table, scan_checked
from lianmo.data.rows import Table
from lianmo.data.scan import TableScan
from lianmo.data.validate import MAX_CLASSES, TASKS, check_binary_labels, check_labels

__all__ = [
    "MAX_CATEGORIES",
    "MAX_CLASSES",
    "TASKS",
    "Table",
    "TableScan",
    "check_binary_labels",
    "check_labels",
    "load_table",
    "scan_checked",
]
