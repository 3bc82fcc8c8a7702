"""Provides the built-in encoders' metadata; torch-free, so listing the zoo stays fast."""

from __future__ import annotations

from mmzoo.zoo.parts import Param

_MAX_LENGTH = Param("max_length", "int", 64, "tokens kept per text; longer texts are truncated", min=1)
_IMAGE_SIZE = Param("image_size", "int", None, "square input size in pixels (default: the model's own)",
                    nullable=True, min=8)


def register_all(register) -> None:
    """Register hf, small_text, timm, torchvision and small_cnn through the hook's ``register`` callback."""
    register(
        "hf",
        "mmzoo.encoders.hf:HFEncoder",
        description="Any Hugging Face transformers text model, by Hub id or local folder, or built from a config",
        modality="text",
        params=(
            Param("model", "str", None, "Hub id or local folder; may be left out when `config` is given",
                  nullable=True),
            Param("pooling", "str", "mean", "how tokens become one vector: masked mean or the first ([CLS]) token",
                  choices=("mean", "cls")),
            _MAX_LENGTH,
            Param("config", "dict", None, "build from scratch: AutoConfig.for_model(**config), e.g. "
                  "{model_type: bert, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2}", nullable=True),
            Param("tokenizer", "str", None, "Hub id or folder of the tokenizer (default: `model`, else characters)",
                  nullable=True),
        ),
    )
    register(
        "small_text",
        "mmzoo.encoders.small_text:SmallTextEncoder",
        description="From-scratch character CNN: embeddings and residual 1-D convolutions, masked-mean pooled",
        modality="text",
        params=(
            Param("dim", "int", 64, "embedding and output width", min=1),
            Param("layers", "int", 2, "number of convolution blocks", min=1),
            Param("kernel_size", "int", 5, "characters each convolution sees (odd)", min=1),
            _MAX_LENGTH,
        ),
    )
    register(
        "timm",
        "mmzoo.encoders.timm_image:TimmEncoder",
        description="Any timm image model with timm's preprocessing; tokens are its final feature map cells",
        modality="image",
        params=(
            Param("model", "str", help="timm model name, e.g. resnet18, mobilenetv3_small_050, vit_tiny_patch16_224"),
            Param("pretrained", "bool", True, "load timm's pretrained weights (needs them cached or online)"),
            _IMAGE_SIZE,
        ),
    )
    register(
        "torchvision",
        "mmzoo.encoders.torchvision_image:TorchvisionEncoder",
        description="A torchvision classification model cut before its pooling; tokens are feature map cells",
        modality="image",
        params=(
            Param("model", "str", help="torchvision.models name, e.g. resnet18, mobilenet_v3_small"),
            Param("weights", "str", None, "weights enum member, e.g. DEFAULT or IMAGENET1K_V1; null: random"),
            _IMAGE_SIZE,
        ),
    )
    register(
        "small_cnn",
        "mmzoo.encoders.small_cnn:SmallCNNEncoder",
        description="From-scratch CNN for small images; tokens are the final grid cells",
        modality="image",
        params=(
            Param("dim", "int", 64, "output width", min=1),
            Param("image_size", "int", 32, "square input size in pixels", min=2),
            Param("channels", "list", [16, 32, 64], "width of each conv block; each block halves the grid"),
        ),
    )
