"""SecureBoost (Cheng et al. 2019): lossless federated gradient-boosted trees.

The guest holds the labels and the Paillier key; hosts hold only features. Every party
bins its own columns locally (:class:`~lianmo.models.binning.QuantileBins`). Per tree
(``round`` = tree number; multi-class grows one tree per class per boosting round):

1. guest -> host_k : the rows sampled for this tree (only if ``subsample < 1``), the
                     (g, h) layout, and [[g_i + h_i * 2**s]] per sampled row: both
                     derivatives, fixed point, packed in one plaintext (one encryption)
   then per level, while some node is still open:
2. guest -> host_k : the level's open nodes (id, parent id) and each row's node
3. host_k          : encrypted (g, h) sums per (node, feature, bin), built for the smaller
                     child of each sibling pair only, the other derived as parent - child
                     by ciphertext subtraction; running sums over bins give every
                     candidate split's left-child sums; candidates with an empty bin are
                     dropped (they repeat the previous candidate), the rest shuffled per
                     node, packed many per plaintext in a layout the host checks and
                     sizes itself, a fresh mask above each candidate's slots, and
                     re-randomised
   host_k -> guest : the packed candidate sums and the candidate count per node
4. guest           : decrypts (one decryption per ~18 candidates with a 2048-bit key),
                     computes the gain of its own and every host's candidates (from exact
                     integer sums, see :mod:`lianmo.models.tree`), picks the best per node
   guest -> host_k : (node, candidate number) for the nodes host_k's candidate won
   host_k -> guest : per such node, which of its rows go left, and a fresh random split
                     id; the host keeps feature, threshold, tree and depth under it,
                     the guest knows the split only as (host, id)
   after the last level:
5. guest           : leaf weights from its own plaintext g, h; routes the validation
                     rows through the new tree (:mod:`lianmo.protocols.tree_route`)
6. guest -> host_k : after each boosting round, continue or stop (early stopping on the
                     validation loss); at the end, how many trees the model keeps

Who learns what (semi-honest): hosts see only ciphertexts of g, h, and learn which rows
share each tree node (the instance space, as in SecureBoost), never labels, g, h, leaf
weights or the guest's splits' features; the guest learns per-candidate exact left sums
of (g, h) and which rows go left at host splits, enough to relate a host's partitions
(for rows at host splits, the order of a column's bins), never host feature names,
thresholds or values. Candidate order is shuffled and split ids are random, so nothing
the guest receives groups a host's splits by feature. A dishonest guest that encrypts
chosen values reads at most the honest slots' width (~106 bits at 24,000 rows) per
candidate; docs/protocols.md states the bounds and the tests behind them.

Modules: ``params`` (hyperparameters, results, timings), ``guest`` (the guest's boosting
round loop), ``grower`` (the guest's side of one tree, level by level), ``host`` (a
host's side), ``sampling`` (rows, features and shuffles drawn from the job DRBG) and
``state`` (checkpoints). Split gains and the choice between parties' candidates are pure
maths in :mod:`lianmo.models.tree` and :mod:`lianmo.models.split_choice`.
"""

from __future__ import annotations

from lianmo.protocols.secureboost.guest import train_guest
from lianmo.protocols.secureboost.host import train_host
from lianmo.protocols.secureboost.params import (
    BoostParams,
    GuestModel,
    GuestResult,
    HostResult,
    Timings,
)

__all__ = [
    "BoostParams",
    "GuestModel",
    "GuestResult",
    "HostResult",
    "Timings",
    "train_guest",
    "train_host",
]
