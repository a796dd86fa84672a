"""Plaintext numpy maths as pure functions: no crypto, no I/O."""

from __future__ import annotations

from lianmo.models.logistic import learning_rate as learning_rate
from lianmo.models.logistic import log_loss as log_loss
from lianmo.models.logistic import sigmoid as sigmoid
from lianmo.models.logistic import taylor_gradient as taylor_gradient
from lianmo.models.logistic import taylor_loss as taylor_loss
from lianmo.models.logistic import taylor_residual as taylor_residual
from lianmo.models.logistic import train_plaintext_taylor as train_plaintext_taylor
from lianmo.models.metrics import auc as auc
from lianmo.models.metrics import ks as ks
from lianmo.models.optimizer import OPTIMIZERS as OPTIMIZERS
from lianmo.models.optimizer import make_optimizer as make_optimizer
from lianmo.models.optimizer import step_weights as step_weights
from lianmo.models.scaler import QuantileClipper as QuantileClipper
from lianmo.models.scaler import Standardizer as Standardizer
