"""Issue 21's accuracy bar in plaintext: the reference trainer (what federated LR computes)
with the model defaults lands within 0.005 AUC of pooled scikit-learn LR, on
``default_credit_hetero`` and on a heavy-tailed version of it (scripts/lr_accuracy.py)."""

from __future__ import annotations

import importlib.util
import sys
import typing as t
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from lianmo.config import LrSpec

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lr_accuracy.py"


@pytest.fixture(scope="module")
def acc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lr_accuracy", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lr_accuracy"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def credit(acc: ModuleType, shared_data: Path) -> t.Any:
    g, h = acc.joined(
        shared_data / "default_credit_hetero_guest.csv",
        shared_data / "default_credit_hetero_host.csv",
        "id",
        "y",
    )
    return acc.data_set("default_credit_hetero", g, h, {})


def test_the_skewed_set_has_the_heavy_tails_the_issue_describes(
    acc: ModuleType, credit: t.Any
) -> None:
    def sigmas(*parts: np.ndarray) -> np.ndarray:
        X = np.hstack(parts)
        return np.abs((X - X.mean(axis=0)) / X.std(axis=0)).max(axis=0)

    before = sigmas(credit.Xg, credit.Xh)
    after = sigmas(*acc.skew(credit.Xg, credit.Xh))
    assert before.max() < 75 and 100 < after.max() < 250  # the issue's data reached 230
    assert (after > 40).sum() > (before > 40).sum()


@pytest.mark.parametrize("skewed", [False, True], ids=["default_credit_hetero", "skewed"])
def test_defaults_are_within_0_005_auc_of_pooled_lr_where_plain_standardising_is_not(
    acc: ModuleType, credit: t.Any, skewed: bool
) -> None:
    ds = credit
    if skewed:
        sg, sh = acc.skew(credit.Xg, credit.Xh)
        ds = acc.DataSet("skewed", sg, sh, credit.y, credit.val, {})
    pooled = acc.pooled_auc(ds)
    assert LrSpec().clip == 0.02 and LrSpec().optimizer == "sgd"  # what "defaults" means
    federated = acc.reference_auc(ds, clip=LrSpec().clip)
    assert federated > pooled - 0.005, (federated, pooled)
    before = acc.reference_auc(ds, clip=0.0)  # standardised only, as lianmo did
    assert before < pooled - 0.005, (before, pooled)
