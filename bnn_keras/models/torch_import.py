"""Official PyTorch checkpoints -> our Keras networks, tensor for tensor.

:func:`import_torch` reads a checkpoint as the official training scripts save it,
recognises the network from its keys (:func:`bnn_keras.models.torch_keys.identify`),
builds the same network with :func:`bnn_keras.models.create` and copies every tensor into
it. Layouts: conv kernels ``(out, in, kh, kw)`` (or ReActNet's / Bi-Real's flat
``(N, 1)`` binary weights) become ``(kh, kw, in, out)``, rotated by 180 degrees for our
PyTorch-aligned nets (:class:`~bnn_keras.layers.Rotate180`); ``Linear`` and the SE
``1x1`` convs become ``Dense`` kernels; BatchNorm running statistics, PReLU slopes,
learnable biases, WS gains and BNext's recoupling scales are copied as they are. An
``RPReLU`` takes three modules, ``x + b1 -> PReLU -> + b2``, as ``bias_in = -b1``.

Every tensor must be used and every weight set: a missing, unexpected or mis-shaped key is
a one-line :class:`BnnError` naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.models.torch_files import read_checkpoint, state_dict
from bnn_keras.models.torch_keys import Identity, Source, identify, source_for
from bnn_keras.quantizers import BINARY_TEMPERATURE, has_binary_kernel
from bnn_keras.variables import latent_variable


@dataclass
class ImportReport:
    """What :func:`import_state_dict` copied."""

    model: str
    variant: str
    source: str
    repository: str
    num_classes: int
    tensors: int = 0
    ignored: list[str] = field(default_factory=list)
    #: binary latent weights exactly 0: torch's sign gives 0, a 1-bit kernel +1
    zero_binary_weights: int = 0
    #: BNext convs whose temperature has not decayed: their weights are not binary yet
    soft_binary_convs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"{self.repository} checkpoint: {self.model} {self.variant}, "
                 f"{self.num_classes} classes; {self.tensors} tensors copied, "
                 f"{len(self.ignored)} keys no layer reads ignored"]
        if self.soft_binary_convs:
            lines.append(f"warning: {len(self.soft_binary_convs)} BNext binary convs have a "
                         f"temperature of at least {BINARY_TEMPERATURE:g} (e.g. "
                         f"{self.soft_binary_convs[0]}): their weights are clip(w / T, -1, 1), "
                         "not binary yet (a mid-training checkpoint); they will not lower "
                         "to LceBconv2d")
        if self.zero_binary_weights:
            lines.append(f"warning: {self.zero_binary_weights} binary weights are exactly 0: "
                         "PyTorch's sign makes them 0, a 1-bit kernel +1")
        return "\n".join(lines)


def _kernel(value: np.ndarray, shape: tuple[int, ...], rotate: bool) -> np.ndarray:
    """A PyTorch conv weight as a Keras kernel of ``shape`` ``(kh, kw, in, out)``."""
    kh, kw, c_in, c_out = shape
    if value.ndim == 2 and value.shape[1] == 1 and value.size == kh * kw * c_in * c_out:
        value = value.reshape(c_out, c_in, kh, kw)  # ReActNet / Bi-Real's flat weights
    if value.ndim != 4:
        return value  # reported as a shape mismatch by the caller
    kernel = value.transpose(2, 3, 1, 0)
    return kernel[::-1, ::-1] if rotate else kernel


def _dense(value: np.ndarray) -> np.ndarray:
    """A ``Linear`` weight ``(out, in)`` or a 1x1 conv weight ``(out, in, 1, 1)``."""
    return value.reshape(value.shape[0], -1).T


def layer_tensors(layer: keras.layers.Layer, prefixes: tuple[str, ...], rotate: bool,
                   take) -> dict[str, np.ndarray]:
    """The values of ``layer``'s weights, by weight name, from the state dict (``take``
    returns one key's tensor and marks it used)."""
    from bnn_keras.layers import LearnableBias, RecouplingMix, RPReLU
    from bnn_keras.quantizers import TemperatureSign

    (prefix, *_) = prefixes
    if isinstance(layer, RPReLU):
        move_in, prelu, move_out = prefixes
        return {"bias_in": -take(f"{move_in}.bias").reshape(-1),
                "alpha": take(f"{prelu}.weight").reshape(-1),
                "bias_out": take(f"{move_out}.bias").reshape(-1)}
    if isinstance(layer, LearnableBias):
        return {"bias": take(f"{prefix}.bias").reshape(-1)}
    if isinstance(layer, RecouplingMix):
        return {"mix": take(f"{prefix}.scale").reshape(-1)}
    if isinstance(layer, keras.layers.PReLU):
        return {"alpha": take(f"{prefix}.weight").reshape(layer.alpha.shape)}
    if isinstance(layer, keras.layers.BatchNormalization):
        return {"gamma": take(f"{prefix}.weight"), "beta": take(f"{prefix}.bias"),
                "moving_mean": take(f"{prefix}.running_mean"),
                "moving_variance": take(f"{prefix}.running_var")}
    if isinstance(layer, keras.layers.Dense):
        out = {"kernel": _dense(take(f"{prefix}.weight"))}
        if layer.use_bias:
            out["bias"] = take(f"{prefix}.bias")
        return out
    if isinstance(layer, keras.layers.Conv2D):
        shape = tuple(int(d) for d in latent_variable(layer.kernel).shape)
        # ReActNet-A's and Bi-Real's binary convs hold flat (N, 1) ``weights``
        out = {"kernel": _kernel(take(f"{prefix}.weight", f"{prefix}.weights"), shape, rotate)}
        if layer.use_bias:
            out["bias"] = take(f"{prefix}.bias")
        if hasattr(layer, "gain"):  # scaled WS: gain (out, 1, 1, 1)
            out["gain"] = take(f"{prefix}.gain").reshape(-1)
        if isinstance(getattr(layer, "kernel_quantizer", None), TemperatureSign):
            out["temperature"] = take(f"{prefix}.temperature").reshape(())
        return out
    raise BnnError(f"no PyTorch mapping for layer {layer.name!r} ({type(layer).__name__})")


def _weight_name(variable) -> str:
    return variable.name.split(":")[0].split("/")[-1]


def import_state_dict(model: keras.Model, state: Mapping[str, np.ndarray], layout: Source,
                      report: ImportReport) -> ImportReport:
    """Copy ``state`` into ``model`` (built for it) by ``layout``'s key rule.

    Raises:
        BnnError: a key the model needs is missing or has another shape, or ``state``
            holds a key neither a layer nor ``layout.ignored`` accounts for.
    """
    rotate = any(type(layer).__name__ == "Rotate180" for layer in model.layers)
    used: set[str] = set()

    def take(key: str, *alternatives: str) -> np.ndarray:
        found = next((k for k in (key, *alternatives) if k in state), None)
        if found is None:
            raise BnnError(f"checkpoint has no key {key!r} ({layout.repository} "
                           f"{report.model} {report.variant} needs it)")
        used.add(found)
        return np.asarray(state[found], dtype=np.float32)

    for layer in model.layers:
        if not layer.weights:
            continue
        prefixes = layout.prefixes(layer.name)
        if prefixes is None:
            raise BnnError(f"layer {layer.name!r} has no {layout.repository} counterpart")
        values = layer_tensors(layer, prefixes, rotate, take)
        for variable in layer.weights:
            name = _weight_name(variable)
            if name not in values:
                raise BnnError(f"no checkpoint tensor for {layer.name}/{name}")
            target, value = latent_variable(variable), values[name]
            if tuple(value.shape) != tuple(target.shape):
                raise BnnError(f"checkpoint tensor for {layer.name}/{name} ({prefixes[0]}) "
                               f"has shape {tuple(value.shape)}, the layer needs "
                               f"{tuple(target.shape)}")
            target.assign(value.astype(target.dtype.as_numpy_dtype))
        if has_binary_kernel(layer):
            report.zero_binary_weights += int(np.sum(values["kernel"] == 0))
        if float(values.get("temperature", 0.0)) >= BINARY_TEMPERATURE:
            report.soft_binary_convs.append(layer.name)
    leftover = sorted(set(state) - used)
    ignored = [key for key in leftover
               if any(re.fullmatch(pattern, key) for pattern in layout.ignored)]
    unexpected = sorted(set(leftover) - set(ignored))
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise BnnError(f"checkpoint key {unexpected[0]!r}{more} is not part of "
                       f"{layout.repository}'s {report.model} {report.variant}")
    report.tensors, report.ignored = len(used), ignored
    return report


def import_torch(checkpoint: str | os.PathLike | Mapping, model: str | None = None,
                 variant: str | None = None, *, num_classes: int | None = None,
                 input_size: int = 224, source: str | None = None
                 ) -> tuple[keras.Model, ImportReport]:
    """Build the network an official checkpoint holds and copy its tensors into it.

    Args:
        checkpoint: a ``.pth`` / ``.pth.tar`` / ``.npz`` path, or a state dict (or a dict
            with one under ``'state_dict'``) of tensors or arrays.
        model, variant: what the checkpoint must be (a registry name and variant); read
            from its keys when ``None``, checked against them otherwise.
        num_classes: checked against the classifier's size when given.
        input_size: the square input size the Keras network is built for.
        source: ``"bnn_nobn"`` or ``"reactnet"`` for a ReActNet-18 / -34 ``bn``
            checkpoint, whose keys are the same in both repositories (BNN_NoBN's
            downsample conv has a binary kernel, ReActNet's a real one).

    Returns:
        The Keras model (inference ready) and an :class:`ImportReport`.

    Example:
        ```python
        net, report = bnn_keras.models.import_torch("reactnet_a.pth.tar")
        net.save("reactnet_a.keras")
        ```
    """
    from bnn_keras.models.registry import create

    state = (state_dict(checkpoint) if isinstance(checkpoint, Mapping)
             else read_checkpoint(checkpoint))
    identity = identify(state)
    _check_claims(identity, model, variant, num_classes)
    chosen = _choose_source(identity, source)
    options = {"stem": identity.stem}
    if identity.model.startswith("reactnet_") and identity.model != "reactnet_a":
        options["source"] = chosen
    net = create(identity.model, identity.variant, identity.num_classes,
                 (input_size, input_size, 3), **options)
    layout = source_for(identity.model, chosen)
    report = ImportReport(identity.model, identity.variant, chosen, layout.repository,
                          identity.num_classes)
    return net, import_state_dict(net, state, layout, report)


def _check_claims(identity: Identity, model: str | None, variant: str | None,
                  num_classes: int | None) -> None:
    found = f"{identity.model} {identity.variant}"
    if model is not None and model != identity.model:
        raise BnnError(f"the checkpoint holds {found}, not {model}")
    if variant is not None and variant != identity.variant:
        raise BnnError(f"the checkpoint holds {found}, not the {variant} variant")
    if num_classes is not None and num_classes != identity.num_classes:
        raise BnnError(f"the checkpoint's classifier has {identity.num_classes} classes, "
                       f"not {num_classes}")


def _choose_source(identity: Identity, source: str | None) -> str:
    if source is None:
        if len(identity.sources) > 1:
            raise BnnError(f"a {identity.model} {identity.variant} checkpoint has the same "
                           f"keys in {' and '.join(identity.sources)}: choose with --source "
                           "(bnn_nobn: binary-weight downsample conv, reactnet: real one)")
        return identity.sources[0]
    if source not in identity.sources:
        raise BnnError(f"a {identity.model} {identity.variant} checkpoint with these keys "
                       f"comes from {' or '.join(identity.sources)}, not {source}")
    return source
