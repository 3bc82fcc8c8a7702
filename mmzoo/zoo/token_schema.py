"""Provides the registry fields of token models and their validation (torch-free).

A token model is a registry model with ``task: {type: tokens, dataset: ...}``: one text
encoder (fine-tuned unless ``freeze: true``), a per-token head, and a training section whose
``lr`` is the head's peak learning rate and ``encoder_lr`` the pretrained encoder's. It may add
an ``image`` encoder and a ``fusion`` that has a token form (``Part.supports_tokens``): the
image then conditions every token.
"""

from __future__ import annotations

from mmzoo.zoo import schema
from mmzoo.zoo.parts import Param

TASK = "tokens"  # the value of a registry model's `task.type` (and a token dataset's `task`)
COMBINERS = ("mean", "weighted", "vote")  # per-word combiners; the others learn from one label per sample

HEAD_PARAMS = (
    Param("hidden", "int", 0, "hidden width of the per-token MLP head; 0 means a single linear layer"),
    Param("dropout", "float", 0.1, "dropout on the token features before the head"),
)

_TOKEN_TRAIN = {
    "epochs": Param("epochs", "int", 5, "maximum number of epochs"),
    "lr": Param("lr", "float", 1e-3, "peak learning rate of the token head (AdamW)"),
    "batch_size": Param("batch_size", "int", 16, "sentences (windows) per optimisation step"),
    "warmup": Param("warmup", "float", 0.1, "fraction of steps spent warming the learning rates up linearly"),
    "patience": Param("patience", "int", 2, "stop after this many epochs without a better validation metric; "
                      "0 disables"),
    "metric": Param("metric", "str", "entity_f1", "validation metric that picks the best epoch",
                    choices=("entity_f1", "token_accuracy")),
    "encoder_lr": Param("encoder_lr", "float", 1e-4, "peak learning rate of the pretrained text encoder; null means lr",
                        nullable=True),
}
TRAIN_PARAMS = tuple(_TOKEN_TRAIN.get(p.name, p) for p in schema.TRAIN_PARAMS
                     if p.name not in ("aux_text", "aux_image")) + (
    Param("freeze_embeddings", "bool", False, "keep the text encoder's word-embedding matrix as pretrained: its "
          "AdamW update is about a fifth of a MiniLM step on CPU, and 1,000 sentences move few of its rows"),
)


def is_token_entry(raw: dict) -> bool:
    task = raw.get("task")
    return isinstance(task, dict) and task.get("type") == TASK


def check(checker, entry, path: tuple, raw: dict, spec: dict) -> None:
    """Token-specific problems of a model entry, each at its line (``checker`` is registry._Checker)."""
    name = entry.name
    if not raw.get("text"):
        checker.problem(entry, path, f"model {name!r}: a token model needs a 'text' encoder")
    if spec["task"].get("label_set") is not None:
        checker.problem(entry, path + ("task", "label_set"), f"model {name!r}: token datasets have one tag set; "
                        "leave label_set out")
    dataset = spec["task"].get("dataset")
    part = checker.zoo.get("dataset", dataset) if isinstance(dataset, str) else None
    if part is not None and part.task != TASK:
        checker.problem(entry, path + ("task", "type"), f"model {name!r}: dataset {dataset!r} has one label per "
                        f"sample ({part.task}), not a tag per token; use a token dataset (e.g. wnut17) or drop "
                        "`type: tokens`")


def token_fusions(zoo) -> list[str]:
    """The registered fusions with a token form (they can condition a tagger on an image)."""
    return [name for name in zoo.names("fusion") if zoo.get("fusion", name).supports_tokens]


def unsupported_fusion(model: str, fusion: str, zoo) -> str:
    able = token_fusions(zoo)
    return (f"model {model!r}: fusion {fusion!r} does not support token models (a tag per word conditioned on the "
            f"image); fusions that do: {', '.join(able) or 'none installed'}")


def check_classification(checker, entry, path: tuple, spec: dict) -> None:
    """A classifier must not name a token dataset."""
    dataset = spec["task"].get("dataset")
    part = checker.zoo.get("dataset", dataset) if isinstance(dataset, str) else None
    if part is not None and part.task == TASK:
        checker.problem(entry, path + ("task", "dataset"), f"model {entry.name!r}: dataset {dataset!r} tags "
                        "every token; add `type: tokens` to the task to train a token tagger")



def check_ensemble(checker, entry, path: tuple, spec: dict, token_models: set[str]) -> None:
    """An ensemble of token models: word-level combiners only, members or seeds recipes, no mixing."""
    recipe = spec.get("recipe") or {}
    members = recipe.get("members")
    # Malformed members (a mapping, a list) are reported by the general ensemble checks; skip them here.
    names = {m for m in members if isinstance(m, str)} if isinstance(members, list) else set()
    names |= {v["model"] for v in recipe.values() if isinstance(v, dict) and isinstance(v.get("model"), str)}
    tokens = names & token_models
    if not tokens:
        return
    if tokens != names:
        checker.problem(entry, path, f"ensemble {entry.name!r} mixes token models ({', '.join(sorted(tokens))}) "
                        f"with classifiers ({', '.join(sorted(names - tokens))}); their outputs cannot be combined")
    if "bagging" in recipe or "boosting" in recipe:
        checker.problem(entry, path, f"ensemble {entry.name!r}: bagging and boosting are not supported for token "
                        "models; use members or seeds")
    combiner = spec.get("combiner") or {}
    if combiner.get("name") not in COMBINERS:
        checker.problem(entry, path + ("combiner",), f"ensemble {entry.name!r}: combiner {combiner.get('name')!r} "
                        f"does not apply to token models; use one of {', '.join(COMBINERS)}")
