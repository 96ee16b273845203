"""Where each layer of our networks lives in the official PyTorch code's state dicts.

Each official repository names its modules its own way; :data:`SOURCES` holds, per
repository, the rule from one of our layer names to the module path(s) whose tensors it
takes (``"layer2.0.binary_conv"``, or three paths for an ``RPReLU``, which is PyTorch's
``LearnableBias -> PReLU -> LearnableBias``), and the keys its state dicts hold that no
layer of the network reads (buffers, and modules its ``forward`` never calls).
:func:`identify` tells from a state dict's keys which repository and network wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from bnn_keras.errors import BnnError

Prefixes = tuple[str, ...]

_RPRELU = "rprelu"


def _prefixes(layer: str, fixed: Mapping[str, str], pattern: str,
              parts: Mapping[str, str | Prefixes],
              base: Callable[[re.Match], str]) -> Prefixes | None:
    """``fixed[layer]``; else, when ``layer`` matches ``pattern`` (whose last group names
    a part of ``parts``), that part's module path(s) under the block's ``base(match)``;
    else None."""
    if layer in fixed:
        return (fixed[layer],)
    m = re.fullmatch(pattern, layer)
    if not m or m[m.lastindex] not in parts:
        return None
    part = parts[m[m.lastindex]]
    return tuple(f"{base(m)}.{p}" for p in ((part,) if isinstance(part, str) else part))


def _resnet(layer: str, parts: Mapping[str, str | Prefixes]) -> Prefixes | None:
    """``stem_conv``, ``stageS_blockB_PART`` and ``classifier`` of the ResNet layouts."""
    return _prefixes(layer, {"stem_conv": "conv1", "stem_bn": "bn1", "classifier": "fc"},
                     r"stage(\d+)_block(\d+)_(\w+)", parts,
                     lambda m: f"layer{m[1]}.{int(m[2]) - 1}")


def _reactnet_resnet(layer: str) -> Prefixes | None:
    """BNN_NoBN ``Qaw_reactnet_18_*.py`` and ReActNet ``resnet/2_step2/birealnet.py``."""
    return _resnet(layer, {"move": "move0", "conv": "binary_conv", "bn": "bn1",
                           _RPRELU: ("move1", "prelu", "move2"),
                           "down_conv": "downsample.1", "down_bn": "downsample.2"})


def _bireal(layer: str) -> Prefixes | None:
    """Bi-Real-net ``pytorch_implementation/BiReal18_34/birealnet.py``."""
    return _resnet(layer, {"conv": "binary_conv", "bn": "bn1",
                           "down_conv": "downsample.1", "down_bn": "downsample.2"})


_REACTNET_A_PARTS = {
    "move1": "move11", "conv3x3": "binary_3x3", "bn3x3": "bn1",
    "rprelu1": ("move12", "prelu1", "move13"), "move2": "move21",
    "conv1x1": "binary_pw", "bn1x1": "bn2", "conv1x1_1": "binary_pw_down1",
    "conv1x1_2": "binary_pw_down2", "bn1x1_1": "bn2_1", "bn1x1_2": "bn2_2",
    "rprelu2": ("move22", "prelu2", "move23"),
}


def _reactnet_a(layer: str) -> Prefixes | None:
    """BNN_NoBN ``Qaw_reactnet_A_*.py`` and ReActNet ``mobilenet/2_step2/reactnet.py``."""
    fixed = {"stem_conv": "feature.0.conv1", "stem_bn": "feature.0.bn1", "classifier": "fc"}
    return _prefixes(layer, fixed, r"block(\d+)_(\w+)", _REACTNET_A_PARTS,
                     lambda m: f"feature.{m[1]}")


_BNEXT_PARTS = {
    "move": "move", "conv": "binary_conv", "bn1": "norm1", "prelu": "activation2",
    "mix": "", "se_reduce": "se.se.1", "se_expand": "se.se.3", "bn2": "norm2",
    "res_prelu": "activation1",
}


def _bnext(layer: str) -> Prefixes | None:
    """BNext ``src/bnext.py`` (its 3x3 module is always the attribute ``Attention``, an
    ``FFN_3x3`` where the block has no ELM-Attention)."""
    fixed = {"stem_conv": "feature.0.conv1", "stem_bn": "feature.0.bn1",
             "head_prelu": "prelu", "classifier": "fc"}
    if layer in fixed:
        return (fixed[layer],)
    m = (re.fullmatch(r"block(\d+)_(3x3)_(\w+)", layer)
         or re.fullmatch(r"block(\d+)_1x1_([12])_(\w+)", layer)
         or re.fullmatch(r"block(\d+)_(1x1)_(\w+)", layer))
    if not m or m[3] not in _BNEXT_PARTS:
        return None
    module = {"3x3": "Attention", "1x1": "FFN"}.get(m[2], f"FFN_{m[2]}")
    part = _BNEXT_PARTS[m[3]]
    return (f"feature.{m[1]}.{module}" + (f".{part}" if part else ""),)


@dataclass(frozen=True)
class Source:
    """One official repository's state-dict layout."""

    name: str
    repository: str
    prefixes: Callable[[str], Prefixes | None]
    #: keys its state dicts hold that no layer reads
    ignored: tuple[str, ...] = (r".*\.num_batches_tracked",)


SOURCES: dict[str, Source] = {
    "bnn_nobn": Source("bnn_nobn", "VITA-Group/BNN_NoBN", _reactnet_resnet),
    "reactnet": Source("reactnet", "liuzechun/ReActNet", _reactnet_resnet),
    "bireal": Source("bireal", "liuzechun/Bi-Real-net", _bireal),
    # HardSign temperatures (the sign ignores them; the binary convs' are imported),
    # the stem's PReLU and the FFN modules' activation1, which forward() never calls
    "bnext": Source("bnext", "hpi-xnor/BNext", _bnext, (
        r".*\.num_batches_tracked", r".*\.temperature", r"feature\.0\.prelu\.weight",
        r"feature\.\d+\.(Attention|FFN|FFN_1|FFN_2)\.activation1\.weight")),
}
#: the ReActNet-A layout is shared by both of its sources
REACTNET_A = {"bnn_nobn": Source("bnn_nobn", "VITA-Group/BNN_NoBN", _reactnet_a),
              "reactnet": Source("reactnet", "liuzechun/ReActNet", _reactnet_a)}


def source_for(model: str, source: str) -> Source:
    """The layout of ``model`` (a registry name) in ``source``'s state dicts."""
    if model == "reactnet_a":
        return REACTNET_A[source]
    return SOURCES[source]


@dataclass(frozen=True)
class Identity:
    """What a state dict is: the model, variant and class count it holds, and the
    repositories whose code writes exactly these keys (two when they cannot be told
    apart)."""

    model: str
    variant: str
    num_classes: int
    sources: tuple[str, ...]
    stem: str


def _variant(state: Mapping[str, np.ndarray], stem_key: str, bn_key: str) -> str:
    if f"{stem_key}.gain" in state:
        return "bf"
    return "bn" if f"{bn_key}.weight" in state else "none"


def _blocks_per_stage(state: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    counts = []
    for stage in range(1, 5):
        indices = {int(m[1]) for key in state
                   if (m := re.match(rf"layer{stage}\.(\d+)\.", key))}
        counts.append(len(indices))
    return tuple(counts)


_RESNET_DEPTHS = {(4, 4, 4, 4): "18", (6, 8, 12, 6): "34"}
_BNEXT_SIZES = {(32, 14): "tiny", (48, 14): "small", (48, 22): "middle", (64, 30): "large"}


def identify(state: Mapping[str, np.ndarray]) -> Identity:
    """The network a state dict (``module.`` prefixes already removed) holds.

    Raises:
        BnnError: when the keys fit none of the official networks.
    """
    if "fc.weight" not in state:
        raise BnnError("not a checkpoint of the official networks: no 'fc.weight' (the "
                       "classifier every one of them ends with)")
    classes = int(state["fc.weight"].shape[0])
    if any(".Attention." in key for key in state):
        stem = state.get("feature.0.conv1.weight")
        depth = 1 + max(int(m[1]) for key in state if (m := re.match(r"feature\.(\d+)\.", key)))
        size = _BNEXT_SIZES.get((None if stem is None else int(stem.shape[0]), depth))
        if size is None:
            raise BnnError(f"a BNext checkpoint of no known size ({depth} feature modules)")
        return Identity(f"bnext_{size}", "bn", classes, ("bnext",),
                        "imagenet" if classes == 1000 else "small")
    if "feature.1.binary_3x3.weights" in state:  # flat (N, 1) binary weights
        return Identity("reactnet_a", "bn", classes, ("reactnet",), "imagenet")
    if "feature.1.binary_3x3.weight" in state:
        return Identity("reactnet_a", _variant(state, "feature.0.conv1", "feature.0.bn1"),
                        classes, ("bnn_nobn",), "imagenet")
    depth = _RESNET_DEPTHS.get(_blocks_per_stage(state))
    stem_weight = state.get("conv1.weight")
    if depth and stem_weight is not None:
        stem = "imagenet" if stem_weight.shape[-1] == 7 else "small"
        if "layer1.0.move0.bias" in state:
            variant = _variant(state, "conv1", "bn1")
            sources = ("bnn_nobn", "reactnet") if variant == "bn" else ("bnn_nobn",)
            return Identity(f"reactnet_{depth}", variant, classes, sources, stem)
        if "layer1.0.binary_conv.weights" in state:
            return Identity(f"birealnet_{depth}", "bn", classes, ("bireal",), stem)
    raise BnnError("the checkpoint's keys match none of the official networks (ReActNet-A / "
                   "-18 / -34, Bi-Real Net 18 / 34, BNext, BNN_NoBN's ReActNets)")
