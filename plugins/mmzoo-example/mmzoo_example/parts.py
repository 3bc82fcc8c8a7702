"""Provides the example plugin's torch code: a char n-gram encoder, a Hadamard fusion, a geometric-mean combiner."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer
from torch import nn

from mmzoo.plugin import (
    Combiner,
    Encoder,
    Features,
    Fusion,
    HeadFactory,
    TextPreprocessor,
    char_tokenizer_json,
    log_probs,
)

# A prime multiplier spreads neighbouring character ids over the buckets; below 2**20, so
# bucket * multiplier + id stays far inside int64 for any table that fits in memory.
HASH_MULTIPLIER = 1_000_003


class CharNgramEncoder(Encoder):
    """A bag of hashed character n-grams (Joulin et al. 2017, "Bag of Tricks", fastText).

    Every n-gram of 1..n characters is hashed into one of ``buckets`` embedding rows.
    A token is the mean of the n-grams starting at that character; the pooled vector is
    the mean of every n-gram in the text. Only integer arithmetic, gathers and sums, so
    it exports to ONNX with dynamic batch and sequence axes.
    """

    modality = "text"

    def __init__(self, *, dim: int, n: int, buckets: int, max_length: int):
        # mmzoo builds parts through their registration, which checks every value against its Param first
        super().__init__()
        tokenizer_json = char_tokenizer_json()
        self.preprocessor = TextPreprocessor(tokenizer_json, max_length=max_length, pad_id=0)
        self.vocab = Tokenizer.from_str(tokenizer_json).get_vocab_size()
        self.output_dim = dim
        self.n = n
        self.buckets = buckets
        self.embed = nn.Embedding(buckets, dim)

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:
        ids = inputs["input_ids"]  # (B, T) int64
        real = inputs["attention_mask"]  # (B, T) int64, 1 on characters, 0 on padding
        total = count = None
        for length in range(1, self.n + 1):
            code = torch.full_like(ids, length)  # starting from the length gives each n-gram size its own hash
            whole = torch.ones_like(real)  # (B, T): 1 where the whole n-gram lies on real characters
            for offset in range(length):
                # pad-then-slice keeps width T even when T < offset, so short batches trace and run alike
                code = (code * HASH_MULTIPLIER + nn.functional.pad(ids, (0, offset))[:, offset:]) % self.buckets
                whole = whole * nn.functional.pad(real, (0, offset))[:, offset:]
            keep = whole.to(self.embed.weight.dtype).unsqueeze(-1)  # (B, T, 1)
            grams = self.embed(code) * keep  # (B, T, D)
            total = grams if total is None else total + grams
            count = keep if count is None else count + keep
        tokens = total / count.clamp(min=1.0)  # (B, T, D): mean of the n-grams starting at each character
        pooled = total.sum(dim=1) / count.sum(dim=1).clamp(min=1.0)  # (B, D): mean of every n-gram
        return Features(pooled, tokens, real.bool())


class HadamardFusion(Fusion):
    """Project both pooled vectors to ``dim`` through tanh and multiply them element-wise.

    The fusion of the VQA baseline (Antol et al., "VQA: Visual Question Answering", ICCV
    2015). Unlike a sum, the product lets either modality switch the other's features on
    or off, so the head sees text-image interactions directly.
    """

    name = "hadamard"
    uses_tokens = False  # reads pooled vectors only, so cached frozen features need no tokens

    def __init__(self, text_dim: int, image_dim: int, num_classes: int, make_head: HeadFactory, *, dim: int) -> None:
        super().__init__(text_dim, image_dim, num_classes, make_head)
        self.text_proj = nn.Linear(text_dim, dim)
        self.image_proj = nn.Linear(image_dim, dim)
        self.head = make_head(dim, num_classes)

    def forward(self, text: Features, image: Features) -> torch.Tensor:
        joint = torch.tanh(self.text_proj(text.pooled)) * torch.tanh(self.image_proj(image.pooled))  # (B, dim)
        return self.head(joint)  # (B, C)


class GeometricMeanCombiner(Combiner):
    """softmax(mean_m log p_m / temperature): the renormalised geometric mean of the members.

    A member that is confident a class is wrong vetoes it, where the arithmetic mean
    would only dilute it. Nothing is learned: ``fit`` only checks its inputs (the base
    class does that) and marks the combiner fitted, so it needs no validation data.
    """

    name = "geometric_mean"
    requires_fit = False

    def __init__(self, num_members: int, num_classes: int, *, temperature: float) -> None:
        # params passed up land in `config`, so Combiner.load rebuilds the same combiner
        super().__init__(num_members, num_classes, temperature=float(temperature))
        self.temperature = float(temperature)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        mean_log = log_probs(probs).mean(dim=1)  # (B, M, C) -> (B, C)
        return torch.softmax(mean_log / self.temperature, dim=-1)  # (B, C)
