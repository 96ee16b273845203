"""Is a flatbuffer its Keras model, deployed as a BNN? The one deployability check.

:func:`check_deployable` answers it with one :class:`Finding` per question:

- ``lowering``: every binary conv of the model is an ``LceBconv2d``;
- ``float_convs`` / ``float_dense``: the float ``CONV_2D`` / ``FULLY_CONNECTED`` ops are
  the model's real convs / Dense layers, none left for a binary layer;
- ``binarizer_inputs``: no float ``MUL`` feeds an ``LceQuantize`` (an unfolded scale);
- ``padding``: LCE's zero-padding correction (``LceBconv2d`` options ``padding`` SAME,
  ``pad_values`` 0) on no more binary convs than the model zero-pads;
- ``agreement``: LCE's interpreter and Keras give the same top-1 on the inputs, or
  agree on enough of them (``min_agreement``) and every input that differs is traced to
  a sign flipped by float rounding (:func:`~bnn_keras.export.first_flips`);
- for a quantization-aware (int8) model, the int8 findings of
  :mod:`~bnn_keras.export.int8` (``int8_kernels``, ``int8_sandwiches``, ``int8_macs``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import tf_keras as keras

from bnn_keras.export.finding import Finding
from bnn_keras.export.flatbuffer import (
    bconv_options,
    input_producers,
    op_counts,
    zero_padding_corrected,
)
from bnn_keras.export.fold import binary_conv_layers
from bnn_keras.export.int8 import int8_findings
from bnn_keras.export.interpreter import predict_tflite
from bnn_keras.export.sign_trace import Divergence, first_flips
from bnn_keras.quantizers import has_binary_kernel

#: The most differing inputs :func:`check_deployable` traces; with more, the agreement
#: check fails without tracing (so many flips are not rounding, and tracing costs one
#: interpreter run per traced input).
MAX_TRACED = 32


@dataclass
class Agreement:
    """Keras versus LCE interpreter on the same inputs."""

    samples: int
    top1_agreement: float
    max_abs_diff: float
    disagreeing: list[int] = field(default_factory=list)  # indices whose top-1 differs


def predict_both(model: keras.Model, flatbuffer: bytes,
                 inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``model``'s outputs on ``inputs`` and the flatbuffer's (LCE's interpreter), in the
    model's output shape."""
    inputs = np.asarray(inputs, dtype=np.float32)
    expected = model.predict(inputs, batch_size=64, verbose=0)
    return expected, predict_tflite(flatbuffer, inputs).reshape(expected.shape)


def agreement_of(expected: np.ndarray, got: np.ndarray) -> Agreement:
    """How the flatbuffer's outputs ``got`` agree with Keras's ``expected``."""
    same = np.argmax(got, -1) == np.argmax(expected, -1)
    return Agreement(
        samples=len(expected),
        top1_agreement=float(np.mean(same)),
        max_abs_diff=float(np.max(np.abs(got - expected))),
        disagreeing=[int(i) for i in np.flatnonzero(~same)],
    )


def compare(model: keras.Model, flatbuffer: bytes, inputs: np.ndarray) -> Agreement:
    """Run ``inputs`` through the Keras model and the flatbuffer (LCE's interpreter)."""
    return agreement_of(*predict_both(model, flatbuffer, inputs))


@dataclass
class SplitCheck:
    """The ``.tflite`` and the Keras model on the same labelled images (a dataset split)."""

    dataset: str
    split: str
    samples: int
    keras_accuracy: float
    tflite_accuracy: float
    top1_agreement: float

    def as_dict(self) -> dict:
        """The figures as a plain dict."""
        return asdict(self)


def split_check(expected: np.ndarray, got: np.ndarray, labels: np.ndarray, *,
                dataset: str = "", split: str = "") -> SplitCheck:
    """Accuracy of Keras's outputs ``expected`` and of the flatbuffer's ``got`` against
    ``labels``."""
    keras_top1 = np.argmax(expected.reshape(len(expected), -1), -1)
    tflite_top1 = np.argmax(got.reshape(len(got), -1), -1)
    labels = np.asarray(labels).reshape(-1)
    return SplitCheck(dataset=dataset, split=split, samples=len(labels),
                      keras_accuracy=float(np.mean(keras_top1 == labels)),
                      tflite_accuracy=float(np.mean(tflite_top1 == labels)),
                      top1_agreement=float(np.mean(keras_top1 == tflite_top1)))


@dataclass
class Deployability:
    """Every :class:`Finding` on a flatbuffer, the agreement they read, for the inputs
    whose top-1 differs where the runtimes part (when traced) and, for labelled inputs,
    both models' accuracy."""

    findings: list[Finding]
    agreement: Agreement | None = None
    divergences: list[Divergence] = field(default_factory=list)
    split_check: SplitCheck | None = None

    @property
    def ok(self) -> bool:
        """Every finding passes."""
        return all(f.ok for f in self.findings)

    @property
    def problems(self) -> list[str]:
        """The failing findings' details."""
        return [f.detail for f in self.findings if not f.ok]

    def finding(self, check: str) -> Finding:
        """The finding named ``check``."""
        return next(f for f in self.findings if f.check == check)

    def as_dict(self) -> dict:
        """Findings, agreement and divergences as plain data."""
        return {"ok": self.ok, "findings": [asdict(f) for f in self.findings],
                "agreement": asdict(self.agreement) if self.agreement else None,
                "divergences": [asdict(d) | {"rounding": d.rounding}
                                for d in self.divergences],
                "split_check": asdict(self.split_check) if self.split_check else None}


def _float_layers(model: keras.Model, cls: type, binary: list) -> list:
    """Layers of ``cls`` LCE keeps float: all but the binary convs, depthwise and
    transposed convs (ops of their own)."""
    other = (keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose)
    return [lay for lay in model.layers if isinstance(lay, cls)
            and not isinstance(lay, other) and lay not in binary]


def _kernel_pads(layer: keras.layers.Layer) -> bool:
    return layer.padding == "same" and any(k > 1 for k in layer.kernel_size)


def _structure_findings(model: keras.Model, flatbuffer: bytes) -> list[Finding]:
    binary = binary_conv_layers(model)
    counts = op_counts(flatbuffer)
    bconvs = counts.get("LceBconv2d", 0)
    findings = [Finding(
        "lowering", bconvs == len(binary),
        f"{bconvs} LceBconv2d for {len(binary)} binary convs" if bconvs == len(binary) else
        f"{len(binary) - bconvs} binary conv(s) did not lower to LceBconv2d"
        if bconvs < len(binary) else
        f"{bconvs} LceBconv2d for {len(binary)} binary convs: more than the model has")]
    convs = len(_float_layers(model, keras.layers.Conv2D, binary))
    found = counts.get("CONV_2D", 0)
    findings.append(Finding("float_convs", found == convs,
                            f"{found} float CONV_2D for {convs} real convs"))
    dense = _float_layers(model, keras.layers.Dense, binary)
    binary_dense = [lay.name for lay in dense if has_binary_kernel(lay)]
    found = counts.get("FULLY_CONNECTED", 0)
    findings.append(Finding(
        "float_dense", found == len(dense) and not binary_dense,
        f"{found} float FULLY_CONNECTED for {len(dense)} Dense layers"
        + (f"; binary Dense deployed float: {', '.join(binary_dense)}" if binary_dense else "")))
    producers = input_producers(flatbuffer, "LceQuantize")
    muls = sum("MUL" in p for p in producers)
    findings.append(Finding("binarizer_inputs", muls == 0,
                            f"{muls} of {len(producers)} LceQuantize fed by a float MUL"))
    asked = sum(getattr(lay, "pad_values", 0.0) == 0.0 and _kernel_pads(lay) for lay in binary)
    corrected = sum(zero_padding_corrected(o) for o in bconv_options(flatbuffer))
    findings.append(Finding("padding", corrected <= asked,
                            f"zero-padding correction on {corrected} LceBconv2d, the model "
                            f"zero-pads {asked} binary convs"))
    return findings


def _agreement_finding(model: keras.Model, flatbuffer: bytes, inputs: np.ndarray,
                       agreement: Agreement, min_agreement: float, trace: bool,
                       ) -> tuple[Finding, list[Divergence]]:
    text = (f"top-1 agreement {agreement.top1_agreement:.2%} on {agreement.samples} inputs, "
            f"threshold {min_agreement:.2%}")
    if agreement.top1_agreement >= min_agreement:
        return Finding("agreement", True, text), []
    under = (f"top-1 agreement {agreement.top1_agreement:.2%} is under the threshold "
             f"{min_agreement:.2%}")
    differing = agreement.disagreeing
    if not trace or len(differing) > MAX_TRACED:
        return Finding("agreement", False, under), []
    divergences = first_flips(model, inputs[differing], list(range(len(differing))),
                              flatbuffer=flatbuffer)
    for d, index in zip(divergences, differing):
        d.sample = index
    unexplained = [d.sample for d in divergences if not d.rounding]
    if not unexplained:
        return Finding("agreement", True, f"{text}; every differing input traced to a sign "
                                          "flipped by float rounding"), divergences
    return Finding("agreement", False, f"{under}; input(s) {unexplained} not explained by "
                                       "float rounding"), divergences


def check_deployable(model: keras.Model, flatbuffer: bytes, inputs: np.ndarray, *,
                     labels: np.ndarray | None = None, dataset: str = "", split: str = "",
                     min_agreement: float = 0.99, trace: bool = True) -> Deployability:
    """Check ``flatbuffer`` (``model``'s conversion) against ``model``: every
    :class:`Finding` of the module's docstring, the agreement on ``inputs``; with
    ``labels``, both models' accuracy on them too (a :class:`SplitCheck` of the split
    ``split`` of ``dataset``), from the same run of both models.

    With ``trace``, an agreement under ``min_agreement`` still passes when every input
    whose top-1 differs (at most :data:`MAX_TRACED`) is traced to rounding
    (``min_agreement=1.0``: every differing input must be). Nothing is raised: failing
    findings are listed (see :attr:`Deployability.problems`).

    Example:
        ```python
        flatbuffer = export.convert(model)
        result = export.check_deployable(model, flatbuffer, x)
        assert result.ok, result.problems
        ```
    """
    from bnn_keras.quantize import is_quantized

    inputs = np.asarray(inputs, dtype=np.float32)
    findings = _structure_findings(model, flatbuffer)
    int8 = is_quantized(model)
    if int8:
        findings += int8_findings(flatbuffer)
    expected, got = predict_both(model, flatbuffer, inputs)
    agreement = agreement_of(expected, got)
    # an int8 net's differences come from integer rounding, which the float sign trace
    # cannot tell apart
    finding, divergences = _agreement_finding(model, flatbuffer, inputs, agreement,
                                              min_agreement, trace and not int8)
    labelled = None if labels is None else split_check(expected, got, labels,
                                                      dataset=dataset, split=split)
    return Deployability(findings + [finding], agreement, divergences, labelled)
