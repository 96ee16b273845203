"""Where an LCE flatbuffer first departs from its Keras model: binarizer by binarizer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tf_keras as keras

from bnn_keras.export.convert import convert
from bnn_keras.export.flatbuffer import bconv_input_taps, with_outputs
from bnn_keras.export.fold import binary_conv_layers, foldable_biases
from bnn_keras.export.interpreter import lce_interpreter, predict_tflite


@dataclass
class SignTrace:
    """One binarizer's input, Keras against LCE, over a batch of samples.

    ``flips[i]`` counts the elements of sample ``i`` whose sign differs (``sign(0) = +1``,
    as in larq and ``LceQuantize``); ``flip_max_abs[i]`` is the largest ``|x|`` Keras
    computed at those elements (0 without flips), against ``std``, the tensor's standard
    deviation. ``max_abs_diff[i]`` is the largest difference anywhere in the tensor.
    """

    layer: str
    size: int
    std: float
    flips: list[int]
    flip_max_abs: list[float]
    max_abs_diff: list[float]


def binarizer_inputs(model: keras.Model) -> list[tuple[str, keras.KerasTensor]]:
    """The distinct tensors that ``model``'s binary convs binarise, in graph order, each
    named after the first conv that reads it."""
    seen, out = set(), []
    for layer in binary_conv_layers(model):
        tensor = layer.input
        if id(tensor) not in seen:
            seen.add(id(tensor))
            out.append((layer.name, tensor))
    return out


def _signs(x: np.ndarray) -> np.ndarray:
    return np.where(x < 0, -1, 1)


def _sign_trace(name: str, expected: np.ndarray, got: np.ndarray) -> SignTrace:
    flips, flip_max, diffs = [], [], []
    for e, g in zip(expected, got):
        flipped = _signs(e) != _signs(g)
        flips.append(int(flipped.sum()))
        flip_max.append(float(np.abs(e[flipped]).max()) if flipped.any() else 0.0)
        diffs.append(float(np.abs(e - g).max()))
    return SignTrace(name, int(expected[0].size), float(expected.std()), flips, flip_max,
                     diffs)


def _traces_from_taps(model: keras.Model, flatbuffer: bytes, inputs: np.ndarray,
                      chosen: list[tuple[str, keras.KerasTensor]]) -> list[SignTrace] | None:
    """The chosen binarizer inputs read out of ``flatbuffer`` itself, or ``None`` when its
    ``LceBconv2d`` ops are not ``model``'s binary convs one for one (same count; in order,
    each reading a float tensor of its conv's input shape through an ``LceQuantize``).
    Binarizer inputs the converter merged (identical ops, e.g. two zero biases on one
    tensor in an untrained model) are read from the one tensor they became."""
    if not chosen:
        return []
    convs = binary_conv_layers(model)
    taps = bconv_input_taps(flatbuffer)
    if len(taps) != len(convs) or any(
            tap is None or tap[1][1:] != tuple(conv.input.shape[1:])
            for conv, tap in zip(convs, taps)):
        return None
    tensor_of = {conv.name: tap[0] for conv, tap in zip(convs, taps)}
    picked = list(dict.fromkeys(tensor_of[name] for name, _ in chosen))
    # the model's own output first, then the picked tensors
    outputs = lce_interpreter(with_outputs(flatbuffer, picked)).predict(inputs)
    got = dict(zip(picked, outputs[len(outputs) - len(picked):]))
    expected = keras.Model(model.input, [t for _, t in chosen]).predict(
        inputs, batch_size=8, verbose=0)
    expected = expected if isinstance(expected, list) else [expected]
    # the export computes sign(x + b / beta) where the model has sign(beta * x + b)
    scales = {layer.name: layer.scale for layer in foldable_biases(model)}
    traces = []
    for (name, tensor), e in zip(chosen, expected):
        e = e / scales.get(tensor._keras_history.layer.name, 1.0)
        traces.append(_sign_trace(name, e, got[tensor_of[name]].reshape(e.shape)))
    return traces


def trace_signs(model: keras.Model, inputs: np.ndarray, *, every: int = 1,
                layers: list[str] | None = None,
                flatbuffer: bytes | None = None) -> list[SignTrace]:
    r"""Compare the input of every ``every``-th binarizer (or of those read by the convs
    named in ``layers``) between Keras and LCE.

    Given ``flatbuffer``, ``model``'s own conversion, the binarizer inputs are read out
    of it: the input of the ``LceQuantize`` feeding each ``LceBconv2d`` becomes an extra
    output (:func:`~bnn_keras.export.flatbuffer.with_outputs`) and one interpreter run per
    input gives them all, as the deployed model computes them (where an input of
    ``model``'s is folded, ``sign(beta * x + b)`` to ``sign(x + b / beta)``, Keras's value
    is divided by ``beta`` to match). Without ``flatbuffer``, or when its ``LceBconv2d``
    ops are not ``model``'s binary convs one for one, each binarizer input \(x\) gets a
    model of its own, ``model`` truncated at \(x\), converted with
    :func:`~bnn_keras.export.convert` and run in LCE's interpreter on ``inputs``.

    LCE computes the float parts in another order than TensorFlow (fused BatchNorm as
    \(a x + b\), its own conv kernels), so \(x\) differs in the last bits; where
    \(|x|\) is that small, \(\operatorname{sign}(x)\) can differ, and the next binary
    conv's output then differs by 2 at every position that reads the flipped element.
    The first binarizer with ``flips > 0`` says where a disagreement between the two
    runtimes starts, and ``flip_max_abs`` whether rounding explains it.

    Without ``flatbuffer``, one conversion per traced binarizer: minutes for a large
    model at 224x224; with it, seconds.

    Example:
        ```python
        flatbuffer = export.convert(model)
        for t in trace_signs(model, x, every=4, flatbuffer=flatbuffer):
            print(t.layer, t.flips, t.flip_max_abs, t.std)
        ```
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    chosen = binarizer_inputs(model)
    if layers is not None:
        wanted = set(layers)
        chosen = [(name, t) for name, t in chosen if name in wanted]
    else:
        chosen = chosen[::every]
    if flatbuffer is not None:
        traces = _traces_from_taps(model, flatbuffer, inputs, chosen)
        if traces is not None:
            return traces
    traces = []
    for name, tensor in chosen:
        truncated = keras.Model(model.input, tensor, name=f"{model.name}_to_{name}")
        expected = truncated.predict(inputs, batch_size=8, verbose=0)
        got = predict_tflite(convert(truncated), inputs).reshape(expected.shape)
        traces.append(_sign_trace(name, expected, got))
    return traces


@dataclass
class Divergence:
    """Where one sample first diverges between Keras and LCE (:func:`first_flips`).

    ``layer`` is the binarizer input found diverged (a sign flipped or a value off by
    more than ``tolerance * std``; ``None``: none diverges) and ``flips`` /
    ``flip_max_abs`` / ``max_abs_diff`` / ``std`` its figures for this sample;
    ``before_max_abs_diff`` / ``before_std`` are those of the binarizer input before it
    (0 / 1 when it is the first). ``rounding`` says whether rounding explains the step:
    the runtimes agree to ``tolerance * std`` before it and at it, and what diverged is
    signs of elements within ``tolerance * std`` of zero.
    """

    sample: int
    layer: str | None
    flips: int
    flip_max_abs: float
    std: float
    before_max_abs_diff: float
    before_std: float
    tolerance: float
    max_abs_diff: float = 0.0

    @property
    def rounding(self) -> bool:
        return (self.layer is not None and self.flips > 0
                and self.before_max_abs_diff <= self.tolerance * self.before_std
                and self.flip_max_abs <= self.tolerance * self.std
                and self.max_abs_diff <= self.tolerance * self.std)


def first_flips(model: keras.Model, inputs: np.ndarray, samples: list[int], *,
                tolerance: float = 1e-4, flatbuffer: bytes | None = None,
                ) -> list[Divergence]:
    """For each index in ``samples``, find where Keras and LCE part among ``model``'s
    binarizer inputs: one that has diverged (a sign flipped, or a value off by more than
    ``tolerance * std``) right after one that has not. :attr:`Divergence.rounding`
    judges whether rounding explains that step (flips only, all within
    ``tolerance * std`` of zero).

    Given ``flatbuffer`` (``model``'s conversion), every binarizer input is read out of it
    in one interpreter run per input (:func:`trace_signs`) and the first diverged one is
    found. Otherwise, or when the flatbuffer's ``LceBconv2d`` ops are not the binary
    convs one for one, the binarizer inputs are bisected: each probe is one
    :func:`trace_signs` conversion shared by all samples, so a 63-binarizer model takes
    about ``log2(63) = 6`` conversions per diverging sample at most, not 63. Bisection
    needs no monotonicity: it ends at a diverged binarizer input whose predecessor agrees.
    """
    if not samples:
        return []
    chosen = binarizer_inputs(model)
    probes: dict[int, SignTrace] = {}
    if flatbuffer is not None:
        probes = dict(enumerate(_traces_from_taps(model, flatbuffer, inputs, chosen) or []))

    def probe(k: int) -> SignTrace:
        if k not in probes:
            probes[k] = trace_signs(model, inputs, layers=[chosen[k][0]])[0]
        return probes[k]

    def diverged(k: int, i: int) -> bool:
        t = probe(k)
        return t.flips[i] > 0 or t.max_abs_diff[i] > tolerance * t.std

    found = []
    for i in samples:
        lo, hi = -1, len(chosen)  # lo: agrees (or the input); hi: diverged (or the output)
        if len(probes) == len(chosen):  # every binarizer known: the first diverged one
            hi = next((k for k in range(len(chosen)) if diverged(k, i)), len(chosen))
            lo = hi - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if diverged(mid, i):
                hi = mid
            else:
                lo = mid
        before = probe(lo) if lo >= 0 else None
        at = probe(hi) if hi < len(chosen) else None
        found.append(Divergence(
            sample=i, layer=at.layer if at else None, flips=at.flips[i] if at else 0,
            flip_max_abs=at.flip_max_abs[i] if at else 0.0, std=at.std if at else 1.0,
            before_max_abs_diff=before.max_abs_diff[i] if before else 0.0,
            before_std=before.std if before else 1.0, tolerance=tolerance,
            max_abs_diff=at.max_abs_diff[i] if at else 0.0))
    return found
