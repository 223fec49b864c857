"""ResNet / WideResNet feature extractors up to layer3, with torchvision-compatible state_dict keys.

Written here (not taken from torchvision) so that the device graph and the tests need no torchvision,
and so layer4 and the classifier, which DDAD never uses, are not built at all. Pretrained weights load
from a torchvision `.pth` file the user gives (keys of layer4 and fc are ignored).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ddad_edge.errors import DdadError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name: (block kind, blocks per layer1..3, bottleneck width per group)
ARCHITECTURES = {
    "resnet18": ("basic", (2, 2, 2), 64),
    "resnet50": ("bottleneck", (3, 4, 6), 64),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6), 128),
    "wide_resnet101_2": ("bottleneck", (3, 4, 23), 128),
}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, width_per_group: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, width_per_group: int) -> None:
        super().__init__()
        width = planes * width_per_group // 64
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class FeatureExtractor(nn.Module):
    """ResNet stem and layer1..layer3. forward: images (B, 3, H, W) in [−1, 1] → [layer1, layer2, layer3].

    The ImageNet normalisation is part of the module, so the exported graph carries it.
    Output shapes for H = W = S: layer1 (B, C1, S/4, S/4), layer2 (B, C2, S/8, S/8), layer3 (B, C3, S/16, S/16).
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in ARCHITECTURES:
            raise DdadError(f"unknown backbone '{name}': choose one of {', '.join(ARCHITECTURES)}")
        kind, blocks, width = ARCHITECTURES[name]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.name = name
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        layers = []
        for i, (planes, n) in enumerate(zip((64, 128, 256), blocks)):
            stride = 1 if i == 0 else 2
            mods = []
            for j in range(n):
                mods.append(block(inplanes, planes, stride if j == 0 else 1, width))
                inplanes = planes * block.expansion
            layers.append(nn.Sequential(*mods))
        self.layer1, self.layer2, self.layer3 = layers
        self.channels = (64 * block.expansion, 128 * block.expansion, 256 * block.expansion)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) * 0.5 - self.mean) / self.std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f1 = self.layer1(x)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3]


RANDOM_BACKBONE_SEED = 0  # the seed of a backbone with backbone_weights: none


def load_backbone(name: str, weights: str = "") -> FeatureExtractor:
    """Build a feature extractor and load its weights.

    `weights`: a path to a torchvision state_dict (.pth); "" to try torchvision's pretrained weights (needs
    torchvision and, the first time, the internet); "none" for random weights, with a warning, because
    features of an untrained network make a weak anomaly map. Random weights are drawn from a fixed seed, so
    every stage (adapt, distill, evaluate, export) of a run sees the same network.
    """
    if weights == "none":
        warnings.warn(f"backbone {name} has random weights (backbone_weights: none): anomaly maps use "
                      f"untrained features; for real use train with --backbone-weights PATH ({_FIX_LATER})",
                      stacklevel=2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_BACKBONE_SEED)
            return FeatureExtractor(name).eval()
    model = FeatureExtractor(name)
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise DdadError(f"backbone weights file not found: {path}: give the path of a torchvision .pth file "
                            f"of {name} ({_FIX_LATER})")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DdadError(f"cannot read backbone weights {path}: {str(exc).splitlines()[0][:160]}") from None
    else:
        state = _torchvision_weights(name)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DdadError(f"backbone weights {weights or name} are not a state_dict (a mapping of names to tensors): "
                        f"save them with torch.save(model.state_dict(), PATH)")
    state = {k: v for k, v in state.items() if not k.startswith(("layer4.", "fc."))}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not match
        raise DdadError(f"backbone weights do not fit {name}: {str(exc).splitlines()[1].strip()[:160]}; "
                        f"use the torchvision weights of {name}") from None
    if missing or unexpected:
        raise DdadError(f"backbone weights do not fit {name}: missing {list(missing)[:3]}, "
                        f"unexpected {list(unexpected)[:3]}; use the torchvision weights of {name}")
    return model.eval()


# Where the weights of an existing run are set: adapt, evaluate and export take no --backbone-weights.
_FIX_LATER = "for an existing run: scoring.backbone_weights in its config.yaml"


def _import_torchvision(name: str):
    try:
        import torchvision
    except ImportError:
        raise DdadError(f"no weights for backbone {name}: torchvision, which provides them, is not installed; "
                        f"give a torchvision .pth file of {name} (train --backbone-weights PATH; {_FIX_LATER}), "
                        "install torchvision (it downloads the weights once), or use none for random "
                        "weights") from None
    return torchvision


def _torchvision_weights(name: str) -> dict[str, torch.Tensor]:
    torchvision = _import_torchvision(name)
    try:
        net = getattr(torchvision.models, name)(weights="DEFAULT")
    except Exception as exc:
        raise DdadError(f"torchvision could not provide pretrained {name} ({str(exc).splitlines()[0][:120]}): "
                        f"give a torchvision .pth file of {name} (train --backbone-weights PATH; "
                        f"{_FIX_LATER})") from None
    return net.state_dict()


def check_backbone(name: str, weights: str = "") -> str | None:
    """Check, before a training, that `load_backbone(name, weights)` will work when adapt and evaluate need it.

    A weights file is loaded now (it must exist and fit `name`); "none" always works; "" needs torchvision,
    and its weights are loaded now when torchvision has them cached, else nothing is downloaded here and the
    returned note says what will be. Raises DdadError naming the problem; returns a note for the user or None.
    """
    if weights == "none":
        return None
    if weights:
        load_backbone(name, weights)
        return None
    torchvision = _import_torchvision(name)
    try:
        url = torchvision.models.get_model_weights(name).DEFAULT.url
    except Exception:  # an older torchvision: its builder will say what is wrong
        return None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if cached.is_file():
        load_backbone(name, "")  # from the cache: nothing is downloaded
        return None
    return (f"backbone {name}: torchvision will download its ImageNet weights ({url}) the first time adapt or "
            f"evaluate builds it; to use a file instead, train with --backbone-weights PATH")
