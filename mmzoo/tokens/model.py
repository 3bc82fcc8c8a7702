"""Provides TokenTagger: a text encoder's token features (B, T, D) -> a tag distribution per word."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.encoders.base import Encoder
from mmzoo.fusions.base import mlp_head


class TokenTagger(nn.Module):
    """Encoder tokens -> dropout -> head, per sub-token; a word reads its first sub-token's row."""

    def __init__(self, spec: dict, labels: list[str], encoder: Encoder):
        super().__init__()
        self.spec, self.labels, self.num_classes = spec, list(labels), len(labels)
        self.text_encoder = encoder
        head = spec["head"]
        self.dropout = nn.Dropout(head["dropout"])
        self.head = mlp_head(head["hidden"], head["dropout"])(encoder.output_dim, self.num_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tokens = self.text_encoder({k: inputs[k] for k in ("input_ids", "attention_mask")}).tokens  # (B, T, D)
        return {"logits": self.head(self.dropout(tokens))}  # (B, T, L)

    def word_probs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   word_positions: torch.Tensor) -> torch.Tensor:
        """Probabilities (B, W, L) of each word, read at its first sub-token ``word_positions`` (B, W)."""
        logits = self({"input_ids": input_ids, "attention_mask": attention_mask})["logits"]  # (B, T, L)
        index = word_positions.unsqueeze(-1).expand(-1, -1, logits.shape[-1])  # (B, W, L)
        return torch.softmax(torch.gather(logits.float(), 1, index), dim=-1)  # (B, W, L)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def create_tagger(spec: dict, labels: list[str]) -> TokenTagger:
    """Build the tagger a resolved token spec describes (pretrained weights load here)."""
    from mmzoo.train.factory import build_encoder

    return TokenTagger(spec, labels, build_encoder(spec["text"]))


class WordProbs(nn.Module):
    """The export surface: (input_ids, attention_mask, word_positions) -> word probabilities (B, W, L).

    With several members (sharing one tokenizer) the members' word probabilities are combined
    per word: ``weights`` (M,) sum to one; ``vote`` counts each member's argmax instead.
    """

    def __init__(self, taggers: list[TokenTagger], weights: list[float] | None = None, vote: bool = False):
        super().__init__()
        self.taggers = nn.ModuleList(taggers)
        m = len(taggers)
        self.register_buffer("weights", torch.tensor(weights or [1.0 / m] * m, dtype=torch.float32))
        self.vote = vote

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                word_positions: torch.Tensor) -> torch.Tensor:
        member = torch.stack([t.word_probs(input_ids, attention_mask, word_positions) for t in self.taggers],
                             dim=2)  # (B, W, M, L)
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
