"""Load and validate a party's table, and derive splits every party agrees on."""

from __future__ import annotations

from lianmo.data.load import load_table as load_table
from lianmo.data.rows import Table as Table
from lianmo.data.split import batch_schedule as batch_schedule
from lianmo.data.split import validation_mask as validation_mask
from lianmo.data.validate import check_binary_labels as check_binary_labels
