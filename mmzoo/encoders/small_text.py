"""Provides the `small_text` encoder: a from-scratch character CNN, fast enough to train on a laptop."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer
from torch import nn

from mmzoo.data.preprocess import TextPreprocessor, char_tokenizer_json
from mmzoo.encoders.base import Encoder, Features
from mmzoo.encoders.pooling import masked_mean
from mmzoo.zoo.parts import ParamError


class SmallTextEncoder(Encoder):
    """Character embeddings, then residual same-length 1-D conv blocks; pooled is the masked mean."""

    modality = "text"

    def __init__(self, *, dim: int, layers: int, kernel_size: int, max_length: int):
        super().__init__()
        if kernel_size % 2 == 0:
            # an even kernel cannot pad symmetrically, so tokens would shift by half a character
            raise ParamError(f"kernel_size must be odd, got {kernel_size}")
        tokenizer_json = char_tokenizer_json()
        self.preprocessor = TextPreprocessor(tokenizer_json, max_length=max_length, pad_id=0)
        vocab = Tokenizer.from_str(tokenizer_json).get_vocab_size()
        self.output_dim = dim
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2), nn.GELU()) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:
        return self.forward_suffix(self.forward_prefix(inputs, 0), 0)

    def _run(self, x: torch.Tensor, mask: torch.Tensor, blocks) -> torch.Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        for block in blocks:
            # zeroing padding after each block stops it leaking into real positions through the kernel
            x = (x + block(x)) * keep  # (B, D, T)
        return x

    def trainable_blocks(self) -> int:
        return len(self.blocks)

    def suffix_modules(self, n: int) -> list[nn.Module]:
        return [*self.blocks[len(self.blocks) - n:], self.norm]

    def forward_prefix(self, inputs: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        mask = inputs["attention_mask"].bool()  # (B, T)
        x = self.embed(inputs["input_ids"]).transpose(1, 2)  # (B, D, T)
        x = self._run(x, mask, self.blocks[:len(self.blocks) - n])
        return {"hidden": x.transpose(1, 2), "attention_mask": mask}  # (B, T, D), (B, T)

    def forward_suffix(self, state: dict[str, torch.Tensor], n: int) -> Features:
        mask = state["attention_mask"].bool()  # (B, T)
        x = self._run(state["hidden"].transpose(1, 2), mask, self.blocks[len(self.blocks) - n:])  # (B, D, T)
        tokens = self.norm(x.transpose(1, 2))  # (B, T, D)
        return Features(masked_mean(tokens, mask), tokens, mask)
