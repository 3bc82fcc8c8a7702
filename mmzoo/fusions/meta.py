"""Provides the torch-free metadata of the built-in fusions, registered by ``register_all``."""

from __future__ import annotations

from collections.abc import Callable

from mmzoo.zoo.parts import Param

_DIM_HELP = "width each modality is projected to before fusing"


def register_all(register: Callable[..., None]) -> None:
    """Register every built-in fusion with mmzoo's ``register`` callback."""
    register(
        "concat",
        "mmzoo.fusions.simple:ConcatFusion",
        description="Early fusion: concatenate pooled text and image features, then a head.",
        params=(Param("dim", "int", 0, "project each modality to this width first; 0 concatenates as-is", min=0),),
    )
    register(
        "late",
        "mmzoo.fusions.simple:LateFusion",
        description="Late fusion: one head per modality, logits averaged (no cross-modal interaction).",
    )
    register(
        "gated",
        "mmzoo.fusions.gated:GatedFusion",
        description="Gated Multimodal Unit (Arevalo et al. 2017): a learned gate mixes the modalities.",
        params=(Param("dim", "int", 128, _DIM_HELP, min=1),),
    )
    register(
        "bilinear",
        "mmzoo.fusions.bilinear:BilinearFusion",
        description="Low-rank Multimodal Fusion (Liu et al. 2018): factorised bilinear interactions.",
        params=(
            Param("rank", "int", 4, "number of rank-1 factor pairs summed (higher = richer, slower)", min=1),
            Param("dim", "int", 128, "width of the fused vector fed to the head", min=1),
        ),
    )
    register(
        "cross_attention",
        "mmzoo.fusions.cross_attention:CrossAttentionFusion",
        description="Co-attention (ViLBERT-style): text and image tokens attend to each other.",
        tokens="mmzoo.fusions.tokens:TokenCrossAttention",  # token models: each token attends to the patches
        params=(
            Param("dim", "int", 128, _DIM_HELP + " (must be divisible by heads)", min=1),
            Param("heads", "int", 4, "attention heads per direction", min=1),
            Param("layers", "int", 1, "stacked cross-attention layers", min=1),
            Param("dropout", "float", 0.1, "dropout on the attention weights", min=0.0, max=0.95),
        ),
    )
    register(
        "film",
        "mmzoo.fusions.film:FilmFusion",
        description="FiLM (Perez et al. 2018): one modality scales and shifts the other's features.",
        tokens="mmzoo.fusions.tokens:TokenFilm",  # token models: the pooled image scales and shifts every token
        token_params=(Param("dim", "int", 128, "width the tokens are projected to before the image modulates them",
                            min=1),),
        params=(
            Param("condition", "str", "text", "the modality that produces gamma and beta", choices=("text", "image")),
            Param("dim", "int", 128, "width the modulated modality is projected to", min=1),
        ),
    )
