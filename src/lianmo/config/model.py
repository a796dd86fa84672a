"""The ``model`` section of a job spec: hetero LR, SecureBoost or scorecard hyperparameters.

Each field declares its default and its constraint together; ``model.type`` picks the
dataclass (``hetero_lr``, the default, ``secureboost`` or ``scorecard``).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from lianmo.config._read import Section, checked, read
from lianmo.config._rules import Boolean, Interval, Name, Options, OrNone, Rule, Where, literal

MIN_KEY_BITS = 2048
#: objectives SecureBoost trains
BOOST_OBJECTIVES = ("binary", "multiclass", "regression")
#: optimisers of LR weights (models/optimizer.py); each data party runs its own
LR_OPTIMIZERS = ("sgd", "momentum", "adam")
#: what LR trains: one model of 0/1 labels, or one per class of labels 0..K-1 (one-vs-rest)
LR_OBJECTIVES = ("binary", "multiclass")

KEY_BITS = Interval(
    int,
    MIN_KEY_BITS,
    fix=f"smaller Paillier keys are refused: use {MIN_KEY_BITS}, or 3072 for data that must "
    "stay confidential past 2030",
)
COUNT = Interval(int, 1)
POSITIVE = Interval(float, 0, closed="right")
NON_NEGATIVE = Interval(float, 0)
SHARE = Interval(float, 0, 1, closed="right")
CLIP = Interval(
    float, 0, 0.1, fix="clip at most 10% of the rows in each tail; 0 turns clipping off"
)


@dataclass(frozen=True, slots=True)
class LabelProtection:
    """Differential privacy of the labels against hosts: (ε, δ) over all epochs.

    The guest adds Gaussian noise calibrated to it to the residuals hosts compute their
    gradients with (protocols/label_noise.py); smaller ε, more noise, lower AUC.
    """

    epsilon: float = field(metadata=checked(Interval(float, 0, 100, closed="right")))
    delta: float = field(default=1e-5, metadata=checked(Interval(float, 0, 1e-3, closed="right")))


@dataclass(frozen=True, slots=True)
class LrSpec:
    """Hyperparameters of coordinated hetero logistic regression."""

    epochs: int = field(default=5, metadata=checked(COUNT))
    batch_size: int = field(default=1024, metadata=checked(COUNT))
    learning_rate: float = field(default=0.15, metadata=checked(POSITIVE))
    lr_decay: float = field(default=0.0, metadata=checked(NON_NEGATIVE))
    l2: float = field(default=0.0, metadata=checked(NON_NEGATIVE))
    tol: float = field(default=1e-4, metadata=checked(NON_NEGATIVE))
    key_bits: int = field(default=2048, metadata=checked(KEY_BITS))
    # off by default: noise costs AUC (docs/protocols.md reports how much)
    label_protection: LabelProtection | None = field(
        default=None, metadata=checked(OrNone(Section(LabelProtection)), optional=True)
    )
    # optional keys: a spec holding their defaults keeps its digest from before they existed
    optimizer: str = field(default="sgd", metadata=checked(Options(LR_OPTIMIZERS), optional=True))
    # share of its training rows each data party clips in each tail of each of its
    # columns before standardising them (0: no clipping; docs/logistic-regression.md)
    clip: float = field(default=0.02, metadata=checked(CLIP, optional=True))
    objective: str = field(
        default="binary", metadata=checked(Options(LR_OBJECTIVES), optional=True)
    )


def _check_lr(spec: LrSpec, at: Where) -> None:
    """Label protection accounts for every epoch: an early stop would leak past it; and
    for one model: a label change moves the residuals of two one-vs-rest models."""
    if spec.label_protection is not None and spec.objective == "multiclass":
        at.child("label_protection").reject(
            "is set but model.objective is multiclass: its privacy accounting covers one "
            "binary model, and a label change moves two one-vs-rest models' residuals; "
            "remove label_protection or train a binary model"
        )
    if spec.label_protection is not None and spec.tol != 0:
        at.child("tol").reject(
            f"is {literal(spec.tol)} but model.label_protection needs tol: 0; a stop "
            "decided on the exact loss would tell hosts about the labels outside the "
            "privacy budget (every epoch is accounted for)"
        )


@dataclass(frozen=True, slots=True)
class ClassWeights(Rule):
    """'balanced', or one weight > 0 per class (lowest label first), kept as floats."""

    expected: str = "'balanced' or a list of weights > 0, one per class (lowest label first)"

    def __call__(self, value: t.Any, at: Where) -> t.Any:
        if isinstance(value, list):
            weight = POSITIVE
            return tuple(float(weight(w, at.child(i))) for i, w in enumerate(value))
        if value is not None and value != "balanced":
            at.fail(value, self.expected, "write balanced or a list such as [1.0, 3.0]")
        return value


@dataclass(frozen=True, slots=True)
class BoostSpec:
    """Hyperparameters of SecureBoost (XGBoost's names where they differ in brackets)."""

    type: str = field(default="secureboost", metadata=checked(Options(("secureboost",))))
    # boosting rounds [n_estimators]; multi-class grows one tree per class per round
    trees: int = field(default=30, metadata=checked(COUNT))
    depth: int = field(default=3, metadata=checked(Interval(int, 1, 16)))  # [max_depth]
    learning_rate: float = field(default=0.3, metadata=checked(POSITIVE))  # [eta]
    max_bins: int = field(default=32, metadata=checked(Interval(int, 2, 256)))
    min_child_weight: float = field(default=1.0, metadata=checked(NON_NEGATIVE))
    l2: float = field(default=1.0, metadata=checked(NON_NEGATIVE))  # [lambda]
    gamma: float = field(default=0.0, metadata=checked(NON_NEGATIVE))
    subsample: float = field(default=1.0, metadata=checked(SHARE))
    # per party, per tree [colsample_bytree]
    colsample: float = field(default=1.0, metadata=checked(SHARE))
    early_stopping_rounds: int | None = field(default=None, metadata=checked(OrNone(COUNT)))
    objective: str = field(default="binary", metadata=checked(Options(BOOST_OBJECTIVES)))
    class_weights: tuple[float, ...] | str | None = field(
        default=None, metadata=checked(ClassWeights())
    )
    key_bits: int = field(default=2048, metadata=checked(KEY_BITS))


@dataclass(frozen=True, slots=True)
class ScorecardSpec:
    """The credit scorecard workflow: bin, WOE/IV, select, WOE logistic regression, scale.

    Binning (each party its own columns, on its training rows): ``max_bins`` quantile bins
    (categories and missing cells get their own), pooled until every value bin holds at
    least ``min_bin_share`` of the rows and, with ``monotonic``, until the event rate is
    monotonic. Selection: IV at least ``min_iv``, the ``top_k`` by IV over every party,
    then within each party no two kept columns with |correlation| of their WOE above
    ``max_corr``. Then coordinated hetero LR on the WOE values (its hyperparameters as
    ``hetero_lr``'s) and points-to-odds scaling (``points`` at good:bad ``odds``, ``pdo``
    points to double them); ``reason_codes`` per scored row. ``reuse``: the id of an
    earlier scorecard job with the same parties and data sets, whose bins, WOE and
    selection every party takes from its own share instead of binning again (a new LR
    and scaling on the same characteristics).
    """

    type: str = field(default="scorecard", metadata=checked(Options(("scorecard",))))
    max_bins: int = field(default=10, metadata=checked(Interval(int, 2, 64)))
    min_bin_share: float = field(default=0.05, metadata=checked(Interval(float, 0, 0.5)))
    monotonic: bool = field(default=False, metadata=checked(Boolean()))
    min_iv: float = field(default=0.02, metadata=checked(NON_NEGATIVE))
    top_k: int | None = field(default=None, metadata=checked(OrNone(COUNT)))
    max_corr: float = field(default=0.8, metadata=checked(SHARE))
    epochs: int = field(default=10, metadata=checked(COUNT))
    batch_size: int = field(default=1024, metadata=checked(COUNT))
    learning_rate: float = field(default=0.15, metadata=checked(POSITIVE))
    lr_decay: float = field(default=0.0, metadata=checked(NON_NEGATIVE))
    l2: float = field(default=0.0, metadata=checked(NON_NEGATIVE))
    tol: float = field(default=1e-4, metadata=checked(NON_NEGATIVE))
    key_bits: int = field(default=2048, metadata=checked(KEY_BITS))
    optimizer: str = field(default="sgd", metadata=checked(Options(LR_OPTIMIZERS), optional=True))
    pdo: float = field(default=20.0, metadata=checked(POSITIVE))
    odds: float = field(default=50.0, metadata=checked(POSITIVE))
    points: float = field(default=600.0, metadata=checked(POSITIVE))
    reason_codes: int = field(default=3, metadata=checked(Interval(int, 0, 20)))
    # an earlier scorecard job whose bins, WOE and selection every party reuses
    reuse: str | None = field(default=None, metadata=checked(OrNone(Name())))


ModelSpec = LrSpec | BoostSpec | ScorecardSpec
MODEL_TYPES: dict[str, type[ModelSpec]] = {
    "hetero_lr": LrSpec,
    "secureboost": BoostSpec,
    "scorecard": ScorecardSpec,
}
#: model types trained by coordinated hetero LR (an arbiter holds the key)
COORDINATED = (LrSpec, ScorecardSpec)


def _check_boost(spec: BoostSpec, at: Where) -> None:
    """Class weights must fit the objective."""
    weights = spec.class_weights
    if weights is None:
        return
    where = at.child("class_weights")
    if spec.objective == "regression":
        where.reject(
            f"is {literal(weights)} but class weights apply to classification objectives "
            f"only, and {at.child('objective').path} is 'regression'; remove class_weights"
        )
    if spec.objective == "binary" and isinstance(weights, tuple) and len(weights) != 2:
        where.reject(
            f"is {literal(weights)} but a binary model needs 2 weights (label 0, label 1); "
            "give two, or write balanced"
        )


@dataclass(frozen=True, slots=True)
class Model(Rule):
    """The ``model`` mapping, read as the dataclass its ``type`` names."""

    @property
    def expected(self) -> str:
        return f"a mapping with a type (one of {list(MODEL_TYPES)}) and that model's keys"

    def __call__(self, value: t.Any, at: Where) -> ModelSpec:
        if not isinstance(value, dict):
            at.fail(value, self.expected, "write it as a mapping")
        kind = Options(tuple(MODEL_TYPES))(
            value.get("type", "hetero_lr"), at.child("type", "hetero_lr")
        )
        if kind == "hetero_lr":
            lr = read(LrSpec, value, at, also=("type",))
            _check_lr(lr, at)
            return lr
        if kind == "scorecard":
            return read(ScorecardSpec, value, at)
        spec = read(BoostSpec, value, at)
        _check_boost(spec, at)
        return spec


__all__ = [
    "BOOST_OBJECTIVES",
    "COORDINATED",
    "LR_OPTIMIZERS",
    "MIN_KEY_BITS",
    "MODEL_TYPES",
    "BoostSpec",
    "LabelProtection",
    "LrSpec",
    "Model",
    "ModelSpec",
    "ScorecardSpec",
]
