"""BN-Inception (Ioffe & Szegedy, 2015): Inception with batch normalisation.

The backbone of most deep-metric-learning work since 2016. Parameter names follow the
published PyTorch port of the ImageNet weights (``conv1_7x7_s2``, ``conv1_7x7_s2_bn``,
``inception_3a_1x1``, ...), so those weights load with ``strict=True``. Every
convolution is followed by batch normalisation and a ReLU. The input is BGR in the range
0-255 minus the mean ``[104, 117, 128]`` (:mod:`dscl.backbones` does this); the output
is the globally average-pooled 1024-d feature (adaptive pooling, so that 227 x 227 crops
give one vector like 224 x 224 ones).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BNInception"]

# name: (in, 1x1, (3x3 reduce, 3x3), (double reduce, double 1, double 2), pool, pool proj)
# A stride-2 ("reduction") block has no 1x1 nor pool projection and a max-pool branch.
_BLOCKS = [
    ("3a", 192, 64, (64, 64), (64, 96, 96), "avg", 32),
    ("3b", 256, 64, (64, 96), (64, 96, 96), "avg", 64),
    ("3c", 320, None, (128, 160), (64, 96, 96), "max_s2", None),
    ("4a", 576, 224, (64, 96), (96, 128, 128), "avg", 128),
    ("4b", 576, 192, (96, 128), (96, 128, 128), "avg", 128),
    ("4c", 576, 160, (128, 160), (128, 160, 160), "avg", 128),
    ("4d", 608, 96, (128, 192), (160, 192, 192), "avg", 128),
    ("4e", 608, None, (128, 192), (192, 256, 256), "max_s2", None),
    ("5a", 1056, 352, (192, 320), (160, 224, 224), "avg", 128),
    ("5b", 1024, 352, (192, 320), (192, 224, 224), "max", 128),
]


class BNInception(nn.Module):
    """BN-Inception up to the global average pool: (b, 3, h, w) -> (b, 1024)."""

    feature_dim = 1024

    def __init__(self) -> None:
        super().__init__()
        self._unit("conv1_7x7_s2", 3, 64, 7, stride=2, padding=3)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._unit("conv2_3x3_reduce", 64, 64, 1)
        self._unit("conv2_3x3", 64, 192, 3, padding=1)
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name, cin, c1, (r3, c3), (rd, d1, d2), pool, proj in _BLOCKS:
            p = f"inception_{name}"
            stride = 2 if pool == "max_s2" else 1
            if c1 is not None:
                self._unit(f"{p}_1x1", cin, c1, 1)
            self._unit(f"{p}_3x3_reduce", cin, r3, 1)
            self._unit(f"{p}_3x3", r3, c3, 3, stride=stride, padding=1)
            self._unit(f"{p}_double_3x3_reduce", cin, rd, 1)
            self._unit(f"{p}_double_3x3_1", rd, d1, 3, padding=1)
            self._unit(f"{p}_double_3x3_2", d1, d2, 3, stride=stride, padding=1)
            if pool == "avg":
                setattr(self, f"{p}_pool", nn.AvgPool2d(3, stride=1, padding=1, ceil_mode=True))
            elif pool == "max":
                setattr(self, f"{p}_pool", nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True))
            else:
                setattr(self, f"{p}_pool", nn.MaxPool2d(3, stride=2, ceil_mode=True))
            if proj is not None:
                self._unit(f"{p}_pool_proj", cin, proj, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)

    def _unit(self, name: str, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0):
        setattr(self, name, nn.Conv2d(cin, cout, k, stride=stride, padding=padding))
        setattr(self, f"{name}_bn", nn.BatchNorm2d(cout, eps=1e-5))

    def _cbr(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1_3x3_s2(self._cbr("conv1_7x7_s2", x))
        x = self._cbr("conv2_3x3", self._cbr("conv2_3x3_reduce", x))
        x = self.pool2_3x3_s2(x)
        for name, _, c1, _, _, _, proj in _BLOCKS:
            p = f"inception_{name}"
            branches = []
            if c1 is not None:
                branches.append(self._cbr(f"{p}_1x1", x))
            branches.append(self._cbr(f"{p}_3x3", self._cbr(f"{p}_3x3_reduce", x)))
            d = self._cbr(f"{p}_double_3x3_reduce", x)
            branches.append(self._cbr(f"{p}_double_3x3_2", self._cbr(f"{p}_double_3x3_1", d)))
            pooled = getattr(self, f"{p}_pool")(x)
            branches.append(self._cbr(f"{p}_pool_proj", pooled) if proj is not None else pooled)
            x = torch.cat(branches, dim=1)
        return self.global_pool(x).flatten(1)  # (b, 1024)
