"""Named model specs: the one place where the live processor and the Spark replay get models.

A spec name plus a Dataset declaration fully determines a fresh model: every spec is generic
over the declared feature kinds (numeric, boolean, categorical) and deterministic (fixed
seeds, no clocks), so two processes building the same spec and feeding it the same examples
in the same order end with the same fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from river import base, forest, linear_model, optim, preprocessing, tree

from kappaml.dataset import Dataset
from kappaml.features import FeatureRoles, InteractionEncoder
from kappaml.guard import Guarded
from kappaml.rls import RecursiveLeastSquares

__all__ = ["DEFAULT_SPEC", "SPECS", "ModelSpec", "build_model"]

# Seeds of the stochastic specs: part of the spec, never taken from the environment.
SEED = 42


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    factory: Callable[[FeatureRoles], base.Regressor]

    def build(self, dataset: Dataset) -> base.Regressor:
        return self.factory(FeatureRoles.of(dataset))


def _rls(roles: FeatureRoles) -> base.Regressor:
    return RecursiveLeastSquares(roles.numeric, roles.indicators, roles.categorical, interactions=True)


def _rls_additive(roles: FeatureRoles) -> base.Regressor:
    return RecursiveLeastSquares(roles.numeric, roles.indicators, roles.categorical, interactions=False)


def _encoder(roles: FeatureRoles, interactions: bool) -> InteractionEncoder:
    return InteractionEncoder(roles.numeric, roles.indicators, roles.categorical, interactions=interactions)


def _sgd_linear() -> linear_model.LinearRegression:
    # Measured on the CO2 stream: lr 0.02 (or no gradient clipping) diverges in some orders.
    return linear_model.LinearRegression(optimizer=optim.SGD(0.01), intercept_lr=0.01, clip_gradient=1.0)


def _linear(roles: FeatureRoles) -> base.Regressor:
    # SGD needs standardised inputs and targets to use one learning rate for any data set.
    return Guarded(
        _encoder(roles, interactions=True)
        | preprocessing.StandardScaler()
        | preprocessing.TargetStandardScaler(regressor=_sgd_linear())
    )


def _bayes_linear(roles: FeatureRoles) -> base.Regressor:
    regressor = linear_model.BayesianLinearRegression(alpha=1, beta=1)
    return Guarded(_encoder(roles, interactions=True) | regressor)


def _amf(roles: FeatureRoles) -> base.Regressor:
    # Uncapped, the 10 trees grow a leaf per example: 25 MB per snapshot after 7,385 CO2 rows,
    # over the models topic's 16 MB limit. 1,023 nodes per tree keep it near 3.6 MB.
    forest_ = forest.AMFRegressor(n_estimators=10, max_nodes=1023, seed=SEED)
    return Guarded(_encoder(roles, interactions=False) | forest_)


def _hoeffding(roles: FeatureRoles) -> base.Regressor:
    model = tree.HoeffdingAdaptiveTreeRegressor(
        grace_period=50, leaf_prediction="model", leaf_model=_sgd_linear(), seed=SEED
    )
    return Guarded(
        _encoder(roles, interactions=True)
        | preprocessing.StandardScaler()
        | preprocessing.TargetStandardScaler(regressor=model)
    )


_ALL = (
    ModelSpec(
        "rls",
        "exact online ridge (recursive least squares) on numerics, indicators and their interactions",
        _rls,
    ),
    ModelSpec("rls_additive", "exact online ridge without interactions", _rls_additive),
    ModelSpec(
        "linear",
        "SGD linear regression with interactions, standardised features and target",
        _linear,
    ),
    ModelSpec(
        "bayes_linear",
        "River's exact Bayesian linear regression (dict based) with interactions",
        _bayes_linear,
    ),
    ModelSpec("amf", "Aggregated Mondrian Forest regressor, 10 trees of <= 1,023 nodes, fixed seed", _amf),
    ModelSpec(
        "hoeffding",
        "Hoeffding adaptive tree regressor, linear leaves, interactions, standardised, fixed seed",
        _hoeffding,
    ),
)

SPECS: Mapping[str, ModelSpec] = MappingProxyType({spec.name: spec for spec in _ALL})
DEFAULT_SPEC = "rls"


def build_model(spec: str, dataset: Dataset) -> base.Regressor:
    """A fresh, untrained model of the named spec for the declared data set."""
    try:
        model_spec = SPECS[spec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model spec {spec!r}; valid specs: {', '.join(sorted(SPECS))}") from None
    return model_spec.build(dataset)
