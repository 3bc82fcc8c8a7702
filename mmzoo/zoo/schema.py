"""Provides the declared fields of registry.yaml's model and ensemble entries (torch-free)."""

from __future__ import annotations

from mmzoo.zoo.parts import Param

HEAD_PARAMS = (
    Param("hidden", "int", 256, "hidden width of the MLP head; 0 means a single linear layer", min=0, max=65536),
    Param("dropout", "float", 0.1, "dropout before the head's output layer", min=0, max=0.99),
    Param("standardize", "bool", False, "standardise frozen features with the training split's mean and std "
                                        "(stored in the model, so exports apply it too)"),
)

TASK_PARAMS = (
    Param("dataset", "str", "emoji", "a registered dataset name, or a folder holding manifest.jsonl/.csv"),
    Param("label_set", "str", None, "which label set to predict; null means the dataset's default", nullable=True),
    Param("type", "str", "classification", "classification: one label per sample; tokens: a BIO tag per word "
          "(named-entity recognition, see docs/tokens.md)", choices=("classification", "tokens")),
)

TRAIN_PARAMS = (
    Param("epochs", "int", 20, "maximum number of epochs", min=1, max=100_000),
    Param("lr", "float", 1e-3, "peak learning rate of AdamW", above=0),
    Param("weight_decay", "float", 0.01, "AdamW weight decay", min=0, max=10),
    Param("batch_size", "int", 64, "samples per optimisation step", min=1, max=1_000_000),
    Param("warmup", "float", 0.05, "fraction of steps spent warming the learning rate up linearly", min=0, max=1),
    Param("grad_clip", "float", 1.0, "clip the global gradient norm to this; 0 disables", min=0),
    Param("patience", "int", 5, "stop after this many epochs without a better validation metric; 0 disables",
          min=0, max=100_000),
    Param("metric", "str", "accuracy", "validation metric for early stopping", choices=("accuracy", "macro_f1")),
    Param("aux_text", "float", 0.0, "weight of the auxiliary text-only loss in the joint objective", min=0, max=100),
    Param("aux_image", "float", 0.0, "weight of the auxiliary image-only loss in the joint objective", min=0, max=100),
    Param("seed", "int", 0, "random seed; the same seed gives the same metrics on CPU", min=0, max=2**32 - 1),
    Param("threads", "int", None, "torch CPU threads (at least 1); null: 1 for a head over cached features, every "
          "allowed CPU when an encoder runs", nullable=True, min=1, max=4096),
    Param("encoder_lr", "float", None, "peak learning rate of the pretrained encoder layers that train (train_last, "
          "or freeze: false); null means lr", nullable=True, above=0),
    Param("precision", "str", "auto", "auto: bf16 autocast where supported; fp32 to disable",
          choices=("auto", "fp32", "bf16", "fp16")),
)

# Keys of a text:/image: entry besides the encoder's own params. `train_last` is declared once, here:
ENCODER_KEYS = ("encoder", "freeze", "train_last")
TRAIN_LAST = Param("train_last", "int", 0, "with freeze: true, train the encoder's last N blocks (transformer layers "
                   "of hf/minilm, MBConv blocks plus the head conv of efficientnet_lite0, conv blocks of small_text "
                   "and small_cnn) and keep the rest frozen; 0: all frozen", min=0, max=10_000)
FUSION_KEYS = ("name",)
COMBINER_KEYS = ("name",)
MODEL_KEYS = ("description", "text", "image", "fusion", "head", "task", "train")
RECIPES = ("members", "seeds", "bagging", "boosting")
ENSEMBLE_KEYS = ("description", "combiner", "resources") + RECIPES
RECIPE_PARAMS = (  # seeds:, bagging: and boosting: of an ensemble
    Param("model", "str", help="the model to repeat"),
    Param("n", "int", 5, "how many members", min=1, max=1000),
)
RESOURCE_PARAMS = (
    Param("cpus", "float", 1.0, "CPUs per member's Ray task", above=0, max=4096),
    Param("gpus", "float", 0.0, "GPUs per member's Ray task; fractions share a GPU", min=0, max=1024),
)

SECTIONS = {"head": HEAD_PARAMS, "task": TASK_PARAMS, "train": TRAIN_PARAMS, "resources": RESOURCE_PARAMS}


def param(section: str, name: str) -> Param:
    """The declared field ``name`` of a model's or ensemble's ``section``: the one place its type and range live."""
    return next(p for p in SECTIONS[section] if p.name == name)


def check_override(key: str, value):
    """A train setting given on the command line or in a form, checked against its declared Param."""
    from mmzoo.errors import RegistryError

    declared = param("train", key)
    complaint = declared.check(value)
    if complaint:
        raise RegistryError(f"--{key.replace('_', '-')} {complaint}", hint=declared.help)
    return value
