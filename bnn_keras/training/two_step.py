"""Two-step training (ReActNet, BN-free BNN) and loading weights from an earlier run.

Stage 1 trains binary activations with real-valued weights: every binary conv keeps its
activation binariser but its kernel is used as is (larq ``QuantConv2D``) or only
weight-standardised (:class:`~bnn_keras.layers.ScaledStdQuantConv2D`). Stage 2 binarises
both and starts from stage 1's weights with :func:`init_from`, which copies every weight
by layer and weight name and fails - instead of silently skipping, as the reference
code's ``load_state_dict(strict=False)`` does - if any weight of the new network is left
at its random initialisation.

Stage 1 changes the layers' kernel quantizers, which their configs record: the stage-1
``model.keras`` reloads as the real-weight network it was trained as, and holds the
latent weights that stage 2 starts from.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import larq as lq
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.layers import ScaledStdQuantConv2D
from bnn_keras.quantizers import has_binary_kernel, is_binarizing
from bnn_keras.training.run_folder import MODEL_FILE, model_file
from bnn_keras.variables import latent_variable


def binary_kernel_layers(net: keras.Model) -> list[keras.layers.Layer]:
    """Layers whose kernel quantizer is 1-bit, whatever their inputs: the binary convs and
    also the binary-kernel convs on real inputs (BNN_NoBN's downsample convs), which
    stage 1 keeps real too.

    :func:`bnn_keras.export.binary_conv_layers` selects fewer on purpose: only convs with
    binary inputs *and* kernels, the ones LCE lowers to ``LceBconv2d``.
    """
    return [layer for layer in net.layers if has_binary_kernel(layer)]


def set_real_weights(net: keras.Model) -> int:
    """Stage 1: make every binary conv use real-valued kernels (activations stay binary):
    larq layers lose their kernel quantizer, weight-standardised ones keep only the
    standardisation (:class:`~bnn_keras.quantizers.StandardizedKernel`).

    Returns the number of layers changed. Call before the first forward pass is traced.
    """
    count = 0
    for layer in binary_kernel_layers(net):
        kernel = getattr(layer, "kernel", None)
        if kernel is None or not hasattr(kernel, "quantizer"):
            continue
        if isinstance(layer, ScaledStdQuantConv2D):
            layer.real_kernel = True
            layer.kernel_quantizer = layer.make_kernel_quantizer()
        else:
            layer.kernel_quantizer = None
        kernel.quantizer = layer.kernel_quantizer  # what the forward pass reads
        count += 1
    return count


def set_ste_clip(net: keras.Model, clip_value: float) -> int:
    """Replace every 1-bit activation binariser by ``ste_sign(clip_value=clip_value)``.

    Returns the number of layers changed.
    """
    count = 0
    for layer in net.layers:
        if is_binarizing(layer):
            layer.input_quantizer = lq.quantizers.SteSign(clip_value=float(clip_value))
            count += 1
    return count


@dataclass
class InitReport:
    """What :func:`init_from` copied, and what it could not."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # no weight of that name in the source
    mismatched: list[str] = field(default_factory=list)  # same name, other shape
    skipped: list[str] = field(default_factory=list)  # left fresh on purpose (init_skip)
    unused: list[str] = field(default_factory=list)  # source weights nothing took

    @property
    def uninitialised(self) -> list[str]:
        return self.missing + self.mismatched

    def as_dict(self) -> dict:
        return {**asdict(self), "counts": {k: len(getattr(self, k)) for k in
                                           ("loaded", "missing", "mismatched", "skipped",
                                            "unused")}}

    def summary(self) -> str:
        return (f"init from {self.source}: {len(self.loaded)} weights loaded, "
                f"{len(self.missing)} missing, {len(self.mismatched)} shape mismatches, "
                f"{len(self.skipped)} skipped, {len(self.unused)} unused")


def _weight_key(layer: keras.layers.Layer, variable) -> str:
    """``layer/weight`` (the variable name without scopes and ``:0``)."""
    name = variable.name.split(":")[0].split("/")[-1]
    return f"{layer.name}/{name}"


def _keyed_weights(net: keras.Model) -> dict[str, object]:
    keyed: dict[str, object] = {}
    for layer in net.layers:
        counts: dict[str, int] = {}
        for variable in layer.weights:
            key = _weight_key(layer, variable)
            n = counts.get(key, 0)
            counts[key] = n + 1
            keyed[key if n == 0 else f"{key}#{n}"] = variable
    return keyed


def resolve_source(source: str | Path) -> Path:
    """A run folder (its ``model.keras``) or a ``.keras`` file."""
    path = model_file(source)
    if Path(source).is_dir() and not path.exists():
        raise BnnError(f"--init-from {source}: no {MODEL_FILE} in that folder (did the run "
                       "finish?)")
    return path


def init_from(net: keras.Model, source: str | Path | keras.Model,
              skip: list[str] | tuple[str, ...] = ()) -> InitReport:
    """Copy weights into ``net`` from ``source`` by layer and weight name, where shapes match.

    ``source`` is a run folder, a ``.keras`` file or a model. ``skip`` holds layer-name
    regular expressions whose weights may stay as initialised (e.g. ``classifier`` when
    the class count changes). Latent weights are copied for larq's quantized kernels.

    Raises:
        BnnError: if any other weight of ``net`` was not loaded (listing them).
    """
    from bnn_keras.keras_files import load_keras_model

    if isinstance(source, keras.Model):
        source_net, label = source, source.name
    else:
        path = resolve_source(source)
        source_net, label = load_keras_model(path), str(path)
    report = InitReport(label)
    available = _keyed_weights(source_net)
    taken = set()
    patterns = [re.compile(p) for p in skip]
    for key, variable in _keyed_weights(net).items():
        layer = key.split("/")[0]
        src = available.get(key)
        if src is None:
            (report.skipped if any(p.fullmatch(layer) for p in patterns)
             else report.missing).append(key)
            continue
        taken.add(key)
        value = latent_variable(src).numpy()
        target = latent_variable(variable)
        if tuple(value.shape) != tuple(target.shape):
            (report.skipped if any(p.fullmatch(layer) for p in patterns)
             else report.mismatched).append(f"{key} {tuple(value.shape)}->{tuple(target.shape)}")
            continue
        target.assign(value)
        report.loaded.append(key)
    report.unused = sorted(set(available) - taken)
    if report.uninitialised:
        shown = ", ".join(report.uninitialised[:8])
        more = len(report.uninitialised) - 8
        raise BnnError(f"{report.summary()}; left uninitialised: {shown}"
                       f"{f' and {more} more' if more > 0 else ''} (allow with --init-skip "
                       "LAYER_REGEX)")
    return report
