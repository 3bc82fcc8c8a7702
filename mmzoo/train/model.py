"""Provides the classifier that joins encoders, a fusion and a head, built from a resolved spec."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Encoder, Features
from mmzoo.fusions.base import mlp_head
from mmzoo.train.standardize import Standardizer


class MultimodalClassifier(nn.Module):
    """Text and/or image encoders -> fusion (or a single head) -> logits.

    With both encoders the fusion produces the main logits, and small auxiliary
    heads on each modality's pooled features give the text-only and image-only
    terms of the joint loss. With one encoder it is that modality's baseline.
    """

    def __init__(self, spec: dict, num_classes: int, text: Encoder | None, image: Encoder | None,
                 fusion: nn.Module | None):
        super().__init__()
        self.spec, self.num_classes = spec, num_classes
        self.text_encoder, self.image_encoder, self.fusion = text, image, fusion
        head = spec["head"]
        make_head = mlp_head(head["hidden"], head["dropout"])
        self.single_head = None
        if fusion is None:
            only = text or image
            self.single_head = make_head(only.output_dim, num_classes)
        train = spec["train"]
        # Auxiliary heads exist only when their loss is used, so unused weights never ship.
        self.aux_text = nn.Linear(text.output_dim, num_classes) if fusion is not None and train["aux_text"] > 0 else None
        self.aux_image = (nn.Linear(image.output_dim, num_classes)
                          if fusion is not None and train["aux_image"] > 0 else None)
        # Per-modality feature standardisation (identity until fit_standardizers sees training features).
        self.standardizers = None
        if head.get("standardize", False):
            self.standardizers = nn.ModuleDict({m: Standardizer(enc.output_dim) for m, enc in
                                                (("text", text), ("image", image)) if enc is not None})

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, enc in (("text", self.text_encoder), ("image", self.image_encoder)) if enc is not None)

    def encode(self, inputs: dict[str, torch.Tensor]) -> dict[str, Features]:
        """Run the encoders on preprocessed inputs."""
        feats = {}
        if self.text_encoder is not None:
            feats["text"] = self.text_encoder({k: inputs[k] for k in ("input_ids", "attention_mask")})
        if self.image_encoder is not None:
            feats["image"] = self.image_encoder({"pixel_values": inputs["pixel_values"]})
        return feats

    def encode_suffix(self, states: dict[str, dict[str, torch.Tensor]]) -> dict[str, Features]:
        """Run the trained last blocks of partly frozen encoders on their cached prefix states (train_last)."""
        out = {}
        for modality, state in states.items():
            encoder = self.text_encoder if modality == "text" else self.image_encoder
            out[modality] = encoder.forward_suffix(state, encoder.trained_blocks)
        return out

    def head(self, feats: dict[str, Features]) -> dict[str, torch.Tensor]:
        """Features -> {"logits": (B, C)} plus auxiliary unimodal logits when they are trained."""
        if self.standardizers is not None:
            feats = {m: self.standardizers[m](f) for m, f in feats.items()}
        if self.fusion is None:
            (only,) = feats.values()
            return {"logits": self.single_head(only.pooled)}
        out = {"logits": self.fusion(feats["text"], feats["image"])}  # (B, C)
        if self.aux_text is not None:
            out["text_logits"] = self.aux_text(feats["text"].pooled)
        if self.aux_image is not None:
            out["image_logits"] = self.aux_image(feats["image"].pooled)
        return out

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.head(self.encode(inputs))

    def parameter_counts(self) -> tuple[int, int]:
        """(all, trainable) parameters of the full model, counting deferred frozen encoders' real weights."""
        from mmzoo.train.deferred import DeferredEncoder

        total = sum(p.numel() for p in self.parameters())
        total += sum(enc.num_parameters for enc in (self.text_encoder, self.image_encoder)
                     if isinstance(enc, DeferredEncoder))
        return total, sum(p.numel() for p in self.parameters() if p.requires_grad)

    def fit_standardizers(self, pooled: dict[str, torch.Tensor]) -> None:
        """Set each modality's standardisation from its training features (N, D); no-op when off."""
        if self.standardizers is None:
            return
        for modality, x in pooled.items():
            self.standardizers[modality].fit(x)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def param_groups(self, lr: float, encoder_lr: float | None) -> list[dict]:
        """AdamW groups, each with its peak learning rate: the head at ``lr``, trained encoder layers at
        ``encoder_lr`` (one group at ``lr`` when it is None, as before encoder_lr existed)."""
        if encoder_lr is None:
            return [{"params": self.trainable_parameters(), "peak": lr}]
        encoders = {id(p) for enc in (self.text_encoder, self.image_encoder) if enc is not None
                    for p in enc.parameters()}
        head = [p for p in self.trainable_parameters() if id(p) not in encoders]
        encoder = [p for p in self.trainable_parameters() if id(p) in encoders]
        return [g for g in ({"params": head, "peak": lr}, {"params": encoder, "peak": encoder_lr}) if g["params"]]

    def preprocessors(self) -> dict:
        return {m: enc.preprocessor for m, enc in (("text", self.text_encoder), ("image", self.image_encoder))
                if enc is not None}
