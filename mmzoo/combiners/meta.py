"""Provides the torch-free metadata of the built-in combiners, registered by ``register_all``."""

from __future__ import annotations

from collections.abc import Callable

from mmzoo.zoo.parts import Param

_SEED = Param("seed", "int", 0, "seed for the fold split and initialisation (same seed, same fit)", min=0)


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
        params=(Param("max_iter", "int", 100, "L-BFGS iterations", min=1),),
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
            Param("weight_decay", "float", 1e-3, "L2 penalty on the meta-model (higher = simpler)", min=0.0, max=1e6),
            Param("folds", "int", 5, "cross-fitting folds for the out-of-fold validation score", min=2),
            Param("max_iter", "int", 200, "L-BFGS iterations per fit", min=1),
            _SEED,
        ),
    )
    register(
        "greedy",
        "mmzoo.combiners.greedy:GreedyCombiner",
        description="Caruana et al. 2004 ensemble selection with replacement; weights = counts/rounds.",
        params=(
            Param("rounds", "int", 25, "selection rounds (beyond ~40 it mostly overfits validation)", min=1),
            Param("metric", "str", "nll", "what each round improves", choices=("nll", "accuracy")),
        ),
    )
    register(
        "moe",
        "mmzoo.combiners.moe:MoeCombiner",
        description="Mixture of experts: an MLP gate weights members per sample (needs ample validation).",
        params=(
            Param("hidden", "int", 32, "width of the gate's hidden layer", min=1),
            Param("lr", "float", 0.01, "Adam learning rate", min=1e-8, max=10.0),
            Param("weight_decay", "float", 1e-4, "Adam weight decay on the gate", min=0.0, max=1e3),
            Param("epochs", "int", 500, "maximum full-batch epochs", min=1),
            Param("patience", "int", 25, "epochs without held-out improvement before stopping", min=1),
            Param("holdout", "float", 0.2, "share of validation held out for early stopping", min=0.05, max=0.5),
            _SEED,
            Param("feature_dim", "int", None, "gate reads members' pooled features of this width, not probs",
                  min=1),
        ),
    )
    register(
        "samme",
        "mmzoo.combiners.samme:SammeCombiner",
        description="SAMME (Zhu et al. 2009) boosted vote: alpha-weighted hard votes from boosting.",
    )
