"""Column clipping and standardisation fitted on one party's own features, kept with its model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lianmo.errors import DataError

__all__ = ["QuantileClipper", "Standardizer"]


@dataclass(frozen=True, slots=True, eq=False)
class Standardizer:
    """Subtract each column's mean and divide by its standard deviation.

    Parameters
    ----------
    mean : numpy.ndarray
        Per-column mean, shape ``(n_features,)``.
    scale : numpy.ndarray
        Per-column divisor, shape ``(n_features,)``, finite and positive. A constant
        column gets ``1.0`` so it maps to zeros instead of dividing by zero.

    Notes
    -----
    The standard deviation is the population one (``ddof=0``), as in scikit-learn's
    ``StandardScaler``. Both arrays are stored as read-only float64 copies.
    """

    mean: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        mean = np.array(self.mean, dtype=np.float64)
        scale = np.array(self.scale, dtype=np.float64)
        if mean.ndim != 1 or scale.shape != mean.shape:
            raise DataError(
                f"standardizer mean has shape {mean.shape} and scale {scale.shape}; both "
                f"must be one value per feature"
            )
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise DataError(
                "standardizer mean must be finite and scale finite and positive; refit it "
                "on a table without missing or infinite values"
            )
        mean.flags.writeable = False
        scale.flags.writeable = False
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        """Learn the column means and standard deviations of ``X``.

        Parameters
        ----------
        X : numpy.ndarray
            Finite values of shape ``(n_rows, n_features)`` with at least one row.

        Returns
        -------
        Standardizer
            The fitted scaler.

        Raises
        ------
        DataError
            If ``X`` is not a non-empty 2-D array of finite numbers.
        """
        X = _check_matrix(X)
        if X.shape[0] == 0:
            raise DataError("cannot fit a standardizer on 0 rows; pass at least one row")
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        # A constant column can come out with a rounding-noise std instead of exactly 0.
        constant = std <= 10 * np.finfo(np.float64).eps * np.abs(mean)
        scale = np.where(constant | (std == 0), 1.0, std)
        return cls(mean=mean, scale=scale)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``(X - mean) / scale`` as a new float64 array.

        Raises
        ------
        DataError
            If ``X`` is not 2-D, not finite, or has a different number of columns than
            the data the scaler was fitted on.
        """
        X = _check_matrix(X)
        if X.shape[1] != self.mean.shape[0]:
            raise DataError(
                f"X has {X.shape[1]} features but the standardizer was fitted on "
                f"{self.mean.shape[0]}; pass the columns the model was trained with"
            )
        scaled: np.ndarray = (X - self.mean) / self.scale
        return scaled

    def to_dict(self) -> dict[str, list[float]]:
        """Return ``{"mean": [...], "scale": [...]}`` with plain floats, ready for JSON."""
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Standardizer:
        """Rebuild a scaler from :meth:`to_dict` output.

        Raises
        ------
        DataError
            If a key is missing or the values are not matching lists of numbers.
        """
        missing = {"mean", "scale"} - set(data)
        if missing:
            raise DataError(
                f"standardizer data lacks {', '.join(sorted(missing))}; expected the keys "
                f"'mean' and 'scale' written by Standardizer.to_dict"
            )
        try:
            return cls(
                mean=np.array(data["mean"], dtype=np.float64),
                scale=np.array(data["scale"], dtype=np.float64),
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"standardizer data is not lists of numbers: {exc}") from exc


@dataclass(frozen=True, slots=True, eq=False)
class QuantileClipper:
    """Clip each column to bounds fitted on training rows (winsorising), before scaling.

    Credit columns (amounts, balances) have long tails: tens to hundreds of standard
    deviations. LR's Taylor loss is a least-squares fit, which such tails pull far from
    the logistic optimum; clipping them at training quantiles brings federated LR back
    within reach of pooled LR (docs/logistic-regression.md has the measurements).

    Parameters
    ----------
    lower, upper : numpy.ndarray
        Per-column bounds, shape ``(n_features,)``, finite, ``lower <= upper``.
    """

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        lower = np.array(self.lower, dtype=np.float64)
        upper = np.array(self.upper, dtype=np.float64)
        if lower.ndim != 1 or upper.shape != lower.shape:
            raise DataError(
                f"clipper lower bounds have shape {lower.shape} and upper {upper.shape}; "
                f"both must be one value per feature"
            )
        if not (np.isfinite(lower).all() and np.isfinite(upper).all() and (lower <= upper).all()):
            raise DataError(
                "clipper bounds must be finite with lower <= upper in every column; refit "
                "it on the training rows"
            )
        lower.flags.writeable = False
        upper.flags.writeable = False
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    def __eq__(self, other: object) -> bool:
        """Equal bounds, value for value (a share read back equals the one written)."""
        if not isinstance(other, QuantileClipper):
            return NotImplemented
        return bool(
            np.array_equal(self.lower, other.lower) and np.array_equal(self.upper, other.upper)
        )

    def __hash__(self) -> int:
        return hash((self.lower.tobytes(), self.upper.tobytes()))

    @classmethod
    def fit(cls, X: np.ndarray, share: float) -> QuantileClipper:
        """Learn the ``share`` and ``1 - share`` quantiles of each column of ``X``.

        Quantiles use numpy's default linear interpolation. Where the two coincide (a
        column with one value in more than ``1 - 2 share`` of its rows, such as a rare
        0/1 level) clipping there would flatten the column, so its bounds are its
        training minimum and maximum instead: its training rows pass unchanged (scoring
        rows beyond them are clipped to them).

        Parameters
        ----------
        X : numpy.ndarray
            Finite values of shape ``(n_rows, n_features)`` with at least one row.
        share : float
            Share of the training rows clipped in each tail, ``0 < share < 0.5``.

        Raises
        ------
        DataError
            If ``X`` is not a non-empty 2-D array of finite numbers or ``share`` is out
            of range.
        """
        X = _check_matrix(X)
        if X.shape[0] == 0:
            raise DataError("cannot fit a clipper on 0 rows; pass at least one row")
        if not 0 < share < 0.5:
            raise DataError(f"clip share is {share!r} but must lie in (0, 0.5)")
        lower, upper = np.quantile(X, [share, 1.0 - share], axis=0)
        flat = lower >= upper
        lower = np.where(flat, X.min(axis=0), lower)
        upper = np.where(flat, X.max(axis=0), upper)
        return cls(lower=lower, upper=upper)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``X`` clipped column by column to ``[lower, upper]`` as a new array.

        Raises
        ------
        DataError
            If ``X`` is not 2-D, not finite, or has another number of columns.
        """
        X = _check_matrix(X)
        if X.shape[1] != self.lower.shape[0]:
            raise DataError(
                f"X has {X.shape[1]} features but the clipper was fitted on "
                f"{self.lower.shape[0]}; pass the columns the model was trained with"
            )
        clipped: np.ndarray = np.clip(X, self.lower, self.upper)
        return clipped

    def to_dict(self) -> dict[str, list[float]]:
        """Return ``{"lower": [...], "upper": [...]}`` with plain floats, ready for JSON."""
        return {"lower": self.lower.tolist(), "upper": self.upper.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> QuantileClipper:
        """Rebuild a clipper from :meth:`to_dict` output.

        Raises
        ------
        DataError
            If a key is missing or the values are not matching lists of numbers.
        """
        missing = {"lower", "upper"} - set(data)
        if missing:
            raise DataError(
                f"clipper data lacks {', '.join(sorted(missing))}; expected the keys "
                f"'lower' and 'upper' written by QuantileClipper.to_dict"
            )
        try:
            return cls(
                lower=np.array(data["lower"], dtype=np.float64),
                upper=np.array(data["upper"], dtype=np.float64),
            )
        except (TypeError, ValueError) as exc:
            raise DataError(f"clipper data is not lists of numbers: {exc}") from exc


def _check_matrix(X: np.ndarray) -> np.ndarray:
    """Return ``X`` as float64, checking it is 2-D and finite."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(
            f"expected a 2-D array of shape (rows, features) but got {X.ndim} dimension(s); "
            f"reshape a single feature with X.reshape(-1, 1)"
        )
    if not np.isfinite(X).all():
        raise DataError("X contains NaN or infinite values; clean the table before scaling")
    return X
