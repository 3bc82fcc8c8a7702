"""Provides the declared fields of registry.yaml's model and ensemble entries (torch-free)."""

from __future__ import annotations

from mmzoo.parts import Param

HEAD_PARAMS = (
    Param("hidden", "int", 256, "hidden width of the MLP head; 0 means a single linear layer"),
    Param("dropout", "float", 0.1, "dropout before the head's output layer"),
)

TASK_PARAMS = (
    Param("dataset", "str", "emoji", "a registered dataset name, or a folder holding manifest.jsonl/.csv"),
    Param("label_set", "str", None, "which label set to predict; null means the dataset's default", nullable=True),
    Param("type", "str", "classification", "classification: one label per sample; tokens: a BIO tag per word "
          "(named-entity recognition, see docs/tokens.md)", choices=("classification", "tokens")),
)

TRAIN_PARAMS = (
    Param("epochs", "int", 20, "maximum number of epochs"),
    Param("lr", "float", 1e-3, "peak learning rate of AdamW"),
    Param("weight_decay", "float", 0.01, "AdamW weight decay"),
    Param("batch_size", "int", 64, "samples per optimisation step"),
    Param("warmup", "float", 0.05, "fraction of steps spent warming the learning rate up linearly"),
    Param("grad_clip", "float", 1.0, "clip the global gradient norm to this; 0 disables"),
    Param("patience", "int", 5, "stop after this many epochs without a better validation metric; 0 disables"),
    Param("metric", "str", "accuracy", "validation metric for early stopping", choices=("accuracy", "macro_f1")),
    Param("aux_text", "float", 0.0, "weight of the auxiliary text-only loss in the joint objective"),
    Param("aux_image", "float", 0.0, "weight of the auxiliary image-only loss in the joint objective"),
    Param("seed", "int", 0, "random seed; the same seed gives the same metrics on CPU"),
    Param("precision", "str", "auto", "auto: bf16 autocast where supported; fp32 to disable",
          choices=("auto", "fp32", "bf16", "fp16")),
)

ENCODER_KEYS = ("encoder", "freeze")  # keys of a text:/image: entry besides the encoder's own params
FUSION_KEYS = ("name",)
COMBINER_KEYS = ("name",)
MODEL_KEYS = ("description", "text", "image", "fusion", "head", "task", "train")
RECIPES = ("members", "seeds", "bagging", "boosting")
ENSEMBLE_KEYS = ("description", "combiner", "resources") + RECIPES
RESOURCE_PARAMS = (
    Param("cpus", "float", 1.0, "CPUs per member's Ray task"),
    Param("gpus", "float", 0.0, "GPUs per member's Ray task; fractions share a GPU"),
)
