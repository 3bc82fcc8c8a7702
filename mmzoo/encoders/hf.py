"""Provides the `hf` encoder: any Hugging Face transformers text model, pretrained or from a config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mmzoo.data.preprocess import TextPreprocessor, char_tokenizer_json
from mmzoo.encoders.base import Encoder, Features
from mmzoo.encoders.pooling import masked_mean
from mmzoo.encoders.weights import OFFLINE_HINT, fetch, first_line, hub_endpoint
from mmzoo.errors import MmzooError
from mmzoo.zoo.parts import ParamError


def _looks_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).expanduser().exists()


def _load(loader, source: str, what: str):
    """``loader.from_pretrained(source)`` with mmzoo errors for missing folders, offline hubs and bad ids."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its per-tensor "Loading weights" bar would interleave with mmzoo's own
    if _looks_local(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise MmzooError(
                f"hf encoder: {what} folder {source!r} does not exist",
                "pass an existing folder (with config.json, weights and tokenizer.json) or a Hugging Face Hub id",
            )
        try:
            return loader.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise MmzooError(f"hf encoder: cannot load {what} from folder {source!r}: {first_line(exc)}",
                             "the folder must hold a transformers model saved with save_pretrained()") from None
    try:
        return fetch(lambda: loader.from_pretrained(source), url=hub_endpoint(), hub=True,
                     what=f"hf encoder: {what} {source!r}",
                     hint=f"pass a local folder as `model`, or {OFFLINE_HINT}")
    except ValueError as exc:  # e.g. huggingface_hub's invalid repo id
        raise MmzooError(f"hf encoder: {source!r} is neither a folder nor a valid Hub id: {first_line(exc)}",
                         "pass a local folder path or an id like 'sentence-transformers/all-MiniLM-L6-v2'") from None


def _tokenizer_json(source: str, what: str) -> tuple[str, int]:
    """The fast tokenizer's tokenizer.json text and its pad id, so training and ONNX share one tokenizer."""
    from transformers import AutoTokenizer

    tok = _load(AutoTokenizer, source, what)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise MmzooError(f"hf encoder: the tokenizer of {source!r} has no fast (Rust) version",
                         "use a model that ships tokenizer.json, or give a `tokenizer` that does")
    return backend.to_str(), int(tok.pad_token_id or 0)


def _vocab_size(tokenizer_json: str) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json).get_vocab_size(with_added_tokens=True)


def _from_config(config: dict[str, Any], vocab: int):
    from transformers import AutoConfig, AutoModel

    cfg = dict(config)
    if "model_type" not in cfg:
        raise MmzooError("hf encoder: `config` needs a `model_type` (e.g. bert)",
                         "example: {model_type: bert, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2}")
    cfg.setdefault("vocab_size", vocab)
    if cfg["vocab_size"] < vocab:
        raise MmzooError(f"hf encoder: config vocab_size {cfg['vocab_size']} is smaller than the tokenizer's {vocab}",
                         f"set vocab_size to at least {vocab}, or leave it out")
    try:
        return AutoModel.from_config(AutoConfig.for_model(**cfg))
    except (ValueError, TypeError, KeyError) as exc:
        raise MmzooError(f"hf encoder: cannot build a model from `config`: {first_line(exc)}",
                         "check model_type and the sizes (hidden_size must divide by num_attention_heads)") from None


class HFEncoder(Encoder):
    """A transformers model's last hidden states as tokens, pooled by masked mean or the first ([CLS]) token."""

    modality = "text"

    def __init__(self, *, model: str | None, pooling: str, max_length: int, config: dict | None,
                 tokenizer: str | None):
        super().__init__()
        if model is None and config is None:
            raise ParamError("give `model` (a Hub id or folder) or `config` (to build from scratch)")
        self.pooling = pooling
        source = tokenizer or model
        what = "tokenizer" if tokenizer else "model"
        tok_json, pad_id = _tokenizer_json(source, what) if source else (char_tokenizer_json(), 0)
        if config is not None:
            self.model = _from_config(config, _vocab_size(tok_json))
        else:
            from transformers import AutoModel

            self.model = _load(AutoModel, model, "model")
        if getattr(self.model.config, "is_encoder_decoder", False):
            # seq2seq models (T5, BART): only the encoder reads text into states
            self.model = self.model.get_encoder()
        if getattr(self.model, "pooler", None) is not None:
            # BERT-style poolers feed next-sentence heads; mmzoo pools itself, so these weights would never train
            self.model.pooler = None
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and max_length > limit:
            raise MmzooError(f"hf encoder: max_length {max_length} exceeds the model's {limit} positions",
                             f"set max_length to {limit} or less")
        self.output_dim = int(self.model.config.hidden_size)
        self.preprocessor = TextPreprocessor(tok_json, max_length=max_length, pad_id=pad_id)

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:
        mask = inputs["attention_mask"]  # (B, T) int64
        tokens = self.model(input_ids=inputs["input_ids"], attention_mask=mask).last_hidden_state  # (B, T, D)
        return self._features(tokens, mask.bool())

    def _features(self, tokens: torch.Tensor, real: torch.Tensor) -> Features:
        pooled = masked_mean(tokens, real) if self.pooling == "mean" else tokens[:, 0]  # (B, D)
        return Features(pooled, tokens, real)

    def _layers(self):
        """The transformer layers of a BERT-style encoder (``encoder.layer``), or None."""
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if isinstance(layers, torch.nn.ModuleList) and not getattr(self.model.config, "is_decoder", False):
            return layers
        return None

    def trainable_blocks(self) -> int:
        layers = self._layers()
        return 0 if layers is None else len(layers)

    def suffix_modules(self, n: int) -> list[torch.nn.Module]:
        layers = self._layers()
        return list(layers[len(layers) - n:])

    def forward_prefix(self, inputs: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        mask = inputs["attention_mask"]  # (B, T)
        out = self.model(input_ids=inputs["input_ids"], attention_mask=mask, output_hidden_states=True)
        # hidden_states[k] is the state after k layers (0: the embeddings)
        return {"hidden": out.hidden_states[len(self._layers()) - n], "attention_mask": mask}  # (B, T, D), (B, T)

    def forward_suffix(self, state: dict[str, torch.Tensor], n: int) -> Features:
        from transformers.masking_utils import create_bidirectional_mask

        hidden, mask = state["hidden"], state["attention_mask"]  # (B, T, D), (B, T)
        extended = create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden,
                                             attention_mask=mask.long())  # as the model's own forward makes it
        layers = self._layers()
        for layer in layers[len(layers) - n:]:
            hidden = layer(hidden, extended)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        return self._features(hidden, mask.bool())
