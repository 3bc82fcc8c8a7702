"""Provides the torch-free metadata of the built-in combiners, registered by ``register_all``."""

from __future__ import annotations

from collections.abc import Callable

from mmzoo.zoo.parts import Param

_SEED = Param("seed", "int", 0, "seed for the fold split and initialisation (same seed, same fit)")


def register_all(register: Callable[..., None]) -> None:
    """Register every built-in combiner with mmzoo's ``register`` callback."""
    register(
        "mean",
        "mmzoo.combiners.mean:MeanCombiner",
        description="Average the members' probabilities (no fitting, cannot overfit).",
    )
    register(
        "weighted",
        "mmzoo.combiners.weighted:WeightedCombiner",
        description="Weighted average, simplex weights fitted by validation NLL (L-BFGS).",
        params=(Param("max_iter", "int", 100, "L-BFGS iterations"),),
    )
    register(
        "vote",
        "mmzoo.combiners.vote:VoteCombiner",
        description="Hard majority vote; ties go to the class with the highest mean probability.",
    )
    register(
        "stacking",
        "mmzoo.combiners.stacking:StackingCombiner",
        description="Logistic regression over members' log-probs, cross-fitted for an honest score.",
        params=(
            Param("input", "str", "log_probs", "what the meta-model reads", choices=("log_probs", "probs")),
            Param("weight_decay", "float", 1e-3, "L2 penalty on the meta-model (higher = simpler)"),
            Param("folds", "int", 5, "cross-fitting folds for the out-of-fold validation score"),
            Param("max_iter", "int", 200, "L-BFGS iterations per fit"),
            _SEED,
        ),
    )
    register(
        "greedy",
        "mmzoo.combiners.greedy:GreedyCombiner",
        description="Caruana et al. 2004 ensemble selection with replacement; weights = counts/rounds.",
        params=(
            Param("rounds", "int", 25, "selection rounds (beyond ~40 it mostly overfits validation)"),
            Param("metric", "str", "nll", "what each round improves", choices=("nll", "accuracy")),
        ),
    )
    register(
        "moe",
        "mmzoo.combiners.moe:MoeCombiner",
        description="Mixture of experts: an MLP gate weights members per sample (needs ample validation).",
        params=(
            Param("hidden", "int", 32, "width of the gate's hidden layer"),
            Param("lr", "float", 0.01, "Adam learning rate"),
            Param("weight_decay", "float", 1e-4, "Adam weight decay on the gate"),
            Param("epochs", "int", 500, "maximum full-batch epochs"),
            Param("patience", "int", 25, "epochs without held-out improvement before stopping"),
            Param("holdout", "float", 0.2, "share of validation held out for early stopping"),
            _SEED,
            Param("feature_dim", "int", None, "gate reads members' pooled features of this width, not probs"),
        ),
    )
    register(
        "samme",
        "mmzoo.combiners.samme:SammeCombiner",
        description="SAMME (Zhu et al. 2009) boosted vote: alpha-weighted hard votes from boosting.",
    )
