"""Provides the torch-free token runtime: raw text -> entity spans with an mmzoo token export.

Imports onnxruntime, tokenizers and numpy only. The steps follow the file's ``mmzoo.tokens``
metadata: split words with the stored pattern, align them to sub-tokens (windows when long),
give every window its sentence's picture when the export reads images (mmzoo.tokens.images),
run the graph, read each word at its first sub-token, decode BIO with repair.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmzoo.data import bio
from mmzoo.errors import DataError, ExportError
from mmzoo.onnx import metadata as md
from mmzoo.tokens.align import WordAligner, collate, scatter, split_words
from mmzoo.tokens.images import SentenceImages
from mmzoo.zoo.token_schema import TASK


def is_token_export(meta: dict) -> bool:
    return meta.get("task") == TASK


class TokenPredictor:
    """One token export: ``entities(text)`` and ``word_probs(sentences)``."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None):
        from mmzoo.onnx.runtime import make_session

        self.path = Path(path)
        self.meta = md.read(self.path)
        if not is_token_export(self.meta):
            raise ExportError(f"{self.path} is not a token (NER) export", hint="use mmzoo.onnx.runtime.Predictor")
        self.labels: list[str] = list(self.meta["labels"])
        self.outside_scale = float(self.meta.get("tokens", {}).get("outside_scale", 1.0))
        self.decoder = self.meta.get("tokens", {}).get("decoder", bio.LEGACY_DECODER)  # older files: argmax
        if self.decoder not in bio.DECODERS:
            raise ExportError(f"{self.path}: its metadata names BIO decoder {self.decoder!r}, which this mmzoo "
                              f"does not know ({', '.join(bio.DECODERS)})", hint="upgrade mmzoo, or re-export")
        config = self.meta["preprocessing"][0]["config"]
        try:
            self.aligner = WordAligner(config["tokenizer_json"], config["max_length"], config["pad_id"])
        except (KeyError, ValueError, Exception) as exc:  # tokenizers raises its own Exception type
            raise ExportError(f"{self.path}: its tokenizer metadata is unusable ({exc})",
                              hint="re-export the run with this mmzoo version") from None
        self.images = None  # an image-conditioned tagger's pixel inputs (mmzoo.tokens.images)
        image = next((p["config"] for p in self.meta["preprocessing"] if p.get("modality") == "image"), None)
        if image is not None:
            try:
                self.images = SentenceImages(image)
            except (KeyError, ValueError, TypeError) as exc:
                raise ExportError(f"{self.path}: its image preprocessing metadata is unusable ({exc})",
                                  hint="re-export the run with this mmzoo version") from None
        try:
            self.session = make_session(self.path, device, threads)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ExportError(f"onnxruntime could not load {self.path}: {exc}",
                              hint="re-export the run; the file may be damaged") from None

    @property
    def reads_images(self) -> bool:
        return self.images is not None

    def word_probs(self, sentences: Sequence[Sequence[str]], images: Sequence | None = None,
                   batch_size: int = 32) -> list[np.ndarray]:
        """Per sentence, word tag probabilities (words, L) in ``labels`` order.

        ``images``: one per sentence (a path, a PIL image, or None for none), read only by an
        image-conditioned export; leaving it out means no sentence has a picture.
        """
        if images is not None and len(images) != len(sentences):
            raise DataError(f"{len(images)} images for {len(sentences)} sentences; give one (or None) per sentence")
        if images is not None and not self.reads_images and any(i is not None for i in images):
            raise DataError(f"{self.path.name} is a text-only tagger; it reads no image",
                            hint="leave out the image, or export an image-conditioned tagger")
        from mmzoo.onnx.runtime import _image  # a missing or unreadable picture is a DataError naming it

        images = [None if i is None else _image(i, f" (sentence {k + 1})") for k, i in enumerate(images)] \
            if images is not None else [None] * len(sentences)
        rows = self.aligner.rows(sentences)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))  # similar lengths pad little
        row_probs: list = [None] * len(rows)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            feeds = collate([rows[i] for i in idx], self.aligner.pad_id)
            if self.images is not None:  # each row (window) reads its sentence's picture
                feeds.update(self.images.batch([images[rows[i].sentence] for i in idx]))
            probs = self.session.run(["probs"], feeds)[0]
            for k, i in enumerate(idx):
                row_probs[i] = probs[k]
        return scatter(rows, row_probs, [len(s) for s in sentences], len(self.labels),
                       self.labels.index(bio.OUTSIDE))

    def entities(self, texts: Sequence[str], images: Sequence | None = None,
                 batch_size: int = 32) -> list[list[dict]]:
        """Per text (and its picture, if any), its entities: type, text, character offsets [start, end), words
        and score."""
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise DataError("text is empty", hint="pass the text to tag, e.g. --text 'Paris is nice'")
        words = [split_words(t) for t in texts]
        probs = self.word_probs([[w for w, _, _ in ws] for ws in words], images, batch_size)
        out = []
        for text, ws, p in zip(texts, words, probs, strict=True):
            found = []
            for span in bio.scored_spans(p, self.labels, self.outside_scale, self.decoder):
                start, end = ws[span["start_word"]][1], ws[span["end_word"] - 1][2]
                found.append({"type": span["type"], "text": text[start:end], "start": start, "end": end,
                              "words": [span["start_word"], span["end_word"]], "score": span["score"]})
            out.append(found)
        return out
