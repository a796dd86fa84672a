"""The AUC cost of hetero LR's label protection, and what the batch floor leaves a host.

Usage: ``PYTHONPATH=src python scripts/lr_label_protection.py [--data DIR]``

For the demo data (``lianmo demo``'s job: 5 epochs, batch 1024, learning rate 0.5, decay
0.01) and ``default_credit_hetero`` (the model defaults), with the job's validation split
(``validation_mask``, share 0.2, seed 42) and standardising on the training rows, prints
the validation AUC of the plaintext reference trainer (``train_plaintext_taylor``, which
the federated protocol follows to 2e-3 in the weights) without noise and with the noise
``model.label_protection`` calibrates for a few ε (δ = 1e-5, over all epochs; tol 0, as
label protection requires), averaged over 5 noise seeds. Then the least-squares attack
of a semi-honest host on round 0 at several rows per gradient coordinate (the batch
floor is 16), against a regression of the labels on the host's own columns. Not a test:
it takes about a minute.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lianmo.crypto.fixedpoint import choose_exponent, quantise
from lianmo.data.split import validation_mask
from lianmo.data.table import load_table
from lianmo.demo_data import demo_file
from lianmo.models.logistic import train_plaintext_taylor
from lianmo.models.metrics import auc
from lianmo.models.scaler import Standardizer
from lianmo.protocols.label_noise import sigma_for

DEMO = dict(epochs=5, batch_size=1024, learning_rate=0.5, lr_decay=0.01, l2=0.0, seed=42)
DEFAULTS = dict(epochs=5, batch_size=1024, learning_rate=0.15, lr_decay=0.0, l2=0.0, seed=42)
EPSILONS = (8.0, 4.0, 1.0)
DELTA = 1e-5


def aligned(guest: Path, host: Path, id_col: str, label: str) -> tuple[np.ndarray, ...]:
    g = load_table(guest, id_column=id_col, label_column=label)
    h = load_table(host, id_column=id_col)
    index = h.index_of()
    keep = np.array([k for k, i in enumerate(g.ids) if i in index])
    g = g.select(keep)
    h = h.select(np.array([index[i] for i in g.ids]))
    assert g.y is not None
    return np.asarray(g.ids), g.X, h.X, g.y


def split(ids: np.ndarray, *parts: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    val = validation_mask([str(i) for i in ids], 0.2, 42)
    train, test = [], []
    for X in parts:
        if X.ndim == 2:
            scaler = Standardizer.fit(X[~val])
            X = scaler.transform(X)
        train.append(X[~val])
        test.append(X[val])
    return train, test


def auc_of(train: list[np.ndarray], test: list[np.ndarray], settings: dict, tol: float,
           noise: float, seed: int) -> float:  # fmt: skip
    Xg, Xh, y = train
    bias = lambda X: np.hstack([X, np.ones((len(X), 1))])  # noqa: E731
    rng = np.random.default_rng(seed)
    draw = (lambda k: rng.normal(0.0, noise, k)) if noise > 0 else None
    w, _ = train_plaintext_taylor([bias(Xg), Xh], y, tol=tol, residual_noise=draw, **settings)
    return auc(test[2], bias(test[0]) @ w[0] + test[1] @ w[1])


def cost(name: str, data: tuple[np.ndarray, ...], settings: dict) -> None:
    ids, Xg, Xh, y = data
    train, test = split(ids, Xg, Xh, y)
    print(f"\n{name}: {len(train[2])} training rows, {len(test[2])} validation rows")
    print(f"  no noise, tol 1e-4: AUC {auc_of(train, test, settings, 1e-4, 0.0, 0):.4f}")
    print(f"  no noise, tol 0:    AUC {auc_of(train, test, settings, 0.0, 0.0, 0):.4f}")
    for eps in EPSILONS:
        sigma = sigma_for(eps, DELTA, settings["epochs"])
        runs = [auc_of(train, test, settings, 0.0, sigma, s) for s in range(5)]
        print(f"  epsilon {eps:>4} (delta {DELTA}, sigma {sigma:.2f}): AUC "
              f"{np.mean(runs):.4f} ± {np.std(runs):.4f}")  # fmt: skip


def attack(name: str, Xh: np.ndarray, y: np.ndarray) -> None:
    Xh = Standardizer.fit(Xh).transform(Xh)
    m, e = Xh.shape[1], choose_exponent(Xh)
    Xq = quantise(Xh, e) * 16.0**e
    rng = np.random.default_rng(0)
    A = np.hstack([Xh, np.ones((len(y), 1))])
    baseline = auc(y, A @ np.linalg.lstsq(A, y, rcond=None)[0])
    print(f"\n{name}: host {m} columns; own-column regression AUC {baseline:.3f}")
    for factor in (1, 2, 4, 8, 16, 32):
        b = factor * m
        scores, labels = [], []
        for _ in range(max(1, 20000 // b)):
            rows = rng.choice(len(y), b, replace=False)
            X = Xq[rows]
            d4 = np.linalg.lstsq(X.T, X.T @ (2.0 - 4.0 * y[rows]), rcond=None)[0]
            scores.append((2.0 - d4) / 4.0)
            labels.append(y[rows])
        print(f"  {factor:>2} rows per coordinate (batch {b:>4}): least-squares label AUC "
              f"{auc(np.concatenate(labels), np.concatenate(scores)):.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    demo = aligned(
        demo_file("credit_broker.csv.gz"),
        demo_file("credit_platform.csv.gz"),
        "client_id",
        "default_next_month",
    )
    credit = aligned(
        args.data / "default_credit_hetero_guest.csv",
        args.data / "default_credit_hetero_host.csv",
        "id",
        "y",
    )
    cost("demo (lianmo demo's job)", demo, DEMO)
    cost("default_credit_hetero (model defaults)", credit, DEFAULTS)
    attack("demo", demo[2], demo[3])
    attack("default_credit_hetero", credit[2], credit[3])


if __name__ == "__main__":
    main()
