"""Provides TokenTagger: a text encoder's token features (B, T, D) -> a tag distribution per word."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Encoder, Features
from mmzoo.fusions.base import mlp_head


class TokenTagger(nn.Module):
    """Encoder tokens -> dropout -> head, per sub-token; a word reads its first sub-token's row.

    With an image encoder and a token fusion (mmzoo.fusions.tokens), the fusion reads the dropped-out
    token features and the image's features and gives the logits instead of the head. A row whose
    sentence has no image (``has_image`` 0) reads a learned "no image" embedding in place of every
    image feature, pooled and per patch, whatever its (zero) pixels encode.
    """

    def __init__(self, spec: dict, labels: list[str], encoder: Encoder, image_encoder: Encoder | None = None,
                 fusion: nn.Module | None = None):
        super().__init__()
        self.spec, self.labels, self.num_classes = spec, list(labels), len(labels)
        self.text_encoder = encoder
        head = spec["head"]
        self.dropout = nn.Dropout(head["dropout"])
        self.image_encoder, self.fusion = image_encoder, fusion
        if fusion is None:
            self.head = mlp_head(head["hidden"], head["dropout"])(encoder.output_dim, self.num_classes)
        else:
            self.no_image = nn.Parameter(torch.zeros(image_encoder.output_dim))

    @property
    def reads_images(self) -> bool:
        return self.fusion is not None

    def image_features(self, inputs: dict[str, torch.Tensor]) -> Features:
        """The image's features, with the "no image" embedding where ``has_image`` (B,) is 0.

        They come from ``pixel_values``, or, for a frozen image encoder whose features the trainer
        cached, from ``image_pooled``, ``image_tokens`` and ``image_mask`` as given.
        """
        if "image_pooled" in inputs:
            image = Features(inputs["image_pooled"], inputs["image_tokens"], inputs["image_mask"])
        elif self.training and not getattr(self.image_encoder, "frozen", False):
            image = self._encode_present(inputs["pixel_values"], inputs["has_image"])
        else:
            image = self.image_encoder({"pixel_values": inputs["pixel_values"]})
        present = inputs["has_image"].to(image.pooled.dtype).view(-1, 1)  # (B, 1)
        none = self.no_image.to(image.pooled.dtype)  # (Di,)
        pooled = present * image.pooled + (1 - present) * none  # (B, Di)
        tokens = present.unsqueeze(-1) * image.tokens + (1 - present.unsqueeze(-1)) * none  # (B, P, Di)
        return Features(pooled, tokens, image.mask)

    def _encode_present(self, pixel_values: torch.Tensor, has_image: torch.Tensor) -> Features:
        """Training: only the rows with a picture go through the encoder, so the zero pixels of the others never
        enter its BatchNorm statistics; the others get zeros (then the "no image" embedding)."""
        keep = has_image > 0  # (B,)
        if bool(keep.all()):
            return self.image_encoder({"pixel_values": pixel_values})
        batch, dim = len(has_image), self.no_image.shape[0]
        if not bool(keep.any()):  # no picture at all: one "patch" per row, replaced by the embedding anyway
            zeros = self.no_image.new_zeros(batch, 1, dim)
            return Features(zeros[:, 0], zeros, torch.ones(batch, 1, dtype=torch.bool, device=zeros.device))
        seen = self.image_encoder({"pixel_values": pixel_values[keep]})
        pooled = seen.pooled.new_zeros(batch, *seen.pooled.shape[1:])
        tokens = seen.tokens.new_zeros(batch, *seen.tokens.shape[1:])
        mask = torch.ones(batch, *seen.mask.shape[1:], dtype=seen.mask.dtype, device=seen.mask.device)
        pooled[keep], tokens[keep], mask[keep] = seen.pooled, seen.tokens, seen.mask
        return Features(pooled, tokens, mask)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        text = self.text_encoder({k: inputs[k] for k in ("input_ids", "attention_mask")})
        tokens = self.dropout(text.tokens)  # (B, T, D)
        if self.fusion is None:
            return {"logits": self.head(tokens)}  # (B, T, L)
        image = self.image_features(inputs)
        return {"logits": self.fusion(Features(text.pooled, tokens, text.mask), image)}  # (B, T, L)

    def probs_at(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Probabilities (B, W, L) of each word, read at its first sub-token ``inputs["word_positions"]`` (B, W)."""
        logits = self(inputs)["logits"]  # (B, T, L)
        index = inputs["word_positions"].unsqueeze(-1).expand(-1, -1, logits.shape[-1])  # (B, W, L)
        return torch.softmax(torch.gather(logits.float(), 1, index), dim=-1)  # (B, W, L)

    def word_probs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_positions: torch.Tensor,
                   pixel_values: torch.Tensor | None = None, has_image: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`probs_at` with positional tensors: the export surface."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "word_positions": word_positions}
        if self.reads_images:
            inputs.update(pixel_values=pixel_values, has_image=has_image)
        return self.probs_at(inputs)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def freeze_word_embeddings(encoder: nn.Module) -> int:
    """Stop training a text encoder's word-embedding table(s); returns how many weights that froze.

    A Hugging Face model names its table (``get_input_embeddings``); other encoders have every
    ``nn.Embedding`` they hold frozen.
    """
    inner = getattr(encoder, "model", None)
    table = inner.get_input_embeddings() if hasattr(inner, "get_input_embeddings") else None
    tables = [table] if isinstance(table, nn.Embedding) else [m for m in encoder.modules()
                                                              if isinstance(m, nn.Embedding)]
    frozen = 0
    for module in tables:
        for weight in module.parameters():
            frozen += weight.numel() if weight.requires_grad else 0
            weight.requires_grad_(False)
    return frozen


def create_tagger(spec: dict, labels: list[str]) -> TokenTagger:
    """Build the tagger a resolved token spec describes (pretrained weights load here)."""
    from mmzoo.train.factory import build_encoder, build_token_fusion

    text = build_encoder(spec["text"])
    if not spec.get("fusion"):
        return TokenTagger(spec, labels, text)
    image = build_encoder(spec["image"])
    head = mlp_head(spec["head"]["hidden"], spec["head"]["dropout"])
    fusion = build_token_fusion(spec["fusion"], text.output_dim, image.output_dim, len(labels), head)
    return TokenTagger(spec, labels, text, image, fusion)


class WordProbs(nn.Module):
    """The export surface: (input_ids, attention_mask, word_positions[, pixel_values, has_image]) -> (B, W, L).

    With several members (sharing one tokenizer) the members' word probabilities are combined
    per word: ``weights`` (M,) sum to one; ``vote`` counts each member's argmax instead.
    """

    def __init__(self, taggers: list[TokenTagger], weights: list[float] | None = None, vote: bool = False):
        super().__init__()
        self.taggers = nn.ModuleList(taggers)
        m = len(taggers)
        self.register_buffer("weights", torch.tensor(weights or [1.0 / m] * m, dtype=torch.float32))
        self.vote = vote

    @property
    def reads_images(self) -> bool:
        return any(t.reads_images for t in self.taggers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_positions: torch.Tensor,
                pixel_values: torch.Tensor | None = None, has_image: torch.Tensor | None = None) -> torch.Tensor:
        member = torch.stack([t.word_probs(input_ids, attention_mask, word_positions, pixel_values, has_image)
                              for t in self.taggers], dim=2)  # (B, W, M, L)
        if len(self.taggers) == 1:
            return member[:, :, 0]
        return combine_torch(member, self.weights, self.vote)


def combine_torch(member: torch.Tensor, weights: torch.Tensor, vote: bool) -> torch.Tensor:
    """(B, W, M, L) -> (B, W, L), the same arithmetic as :func:`mmzoo.tokens.ensemble.combine`."""
    if vote:
        hard = torch.nn.functional.one_hot(member.argmax(-1), member.shape[-1]).to(member.dtype)  # (B, W, M, L)
        counts = (hard * weights.view(1, 1, -1, 1)).sum(2)  # (B, W, L)
        # ties go to the label with the higher mean probability: a tiny tie-breaker below one vote's weight
        return counts * 0.999 + 0.001 * member.mean(2)
    return (member * weights.view(1, 1, -1, 1)).sum(2)
