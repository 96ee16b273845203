"""bnn_keras.fusion: the XLA-fused element-wise chains give their unfused ops' values bit
for bit, and only the training graph (and evaluation during training) takes them."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras import fusion
from bnn_keras.layers import RPReLU
from bnn_keras.layers.activations import (
    _rprelu_backward,
    _rprelu_forward,
    _shift_forward,
    rprelu,
    scaled_shift,
)
from bnn_keras.quantizers import _approx_sign_grad


def _as_float(t: tf.Tensor) -> np.ndarray:
    return tf.cast(t, tf.float32).numpy()


def _relu_shift(x, bias_in):
    s = x - bias_in
    return s, tf.nn.relu(s)


#: each fused chain and the plain ops it stands for, op by op in the inputs' dtype
CHAINS = {
    "rprelu forward": (_rprelu_forward, lambda x, g, a, z, dy: (x, g, a, z), lambda x, g, a, z:
                       (lambda s, pos: pos + a * (s - pos) + z)(*_relu_shift(x, g))),
    "rprelu backward": (_rprelu_backward, lambda x, g, a, z, dy: (x, g, a, dy),
                        lambda x, g, a, dy: (tf.where(x - g > 0, dy, a * dy),
                                             dy * tf.minimum(x - g, 0))),
    "scaled shift": (_shift_forward, lambda x, g, a, z, dy: (x, tf.constant(0.7, x.dtype), z),
                     lambda x, c, b: x * c + b),
    "approx_sign gradient": (_approx_sign_grad, lambda x, g, a, z, dy: (x, dy),
                             lambda x, dy: dy * tf.nn.relu(2.0 - 2.0 * tf.abs(x))),
}


#: the scaled shift is fused for 16-bit inputs only (float32 XLA would make an FMA of it)
HALF_ONLY = {"scaled shift"}


@pytest.mark.parametrize("dtype,name", [(d, n) for n in CHAINS for d in ("float32", "bfloat16")
                                        if d != "float32" or n not in HALF_ONLY])
def test_fused_chains_equal_their_ops(rng, dtype, name):
    """Compiled (in float32 for bfloat16, rounding where each op rounds) and as plain
    ops, a chain gives the values of its ops one by one, bit for bit."""
    kernel, pick, reference = CHAINS[name]
    x = rng.normal(0, 0.8, (4, 9, 9, 16)).astype(np.float32)
    x.flat[:4] = [0.0, 1.0, -1.0, 3.0]  # the kinks of the sign's gradient
    bias_in = rng.normal(0, 0.1, 16).astype(np.float32)
    x[0, 0, 1] = bias_in  # s == 0 exactly
    values = [x, bias_in, rng.normal(0.25, 0.5, 16), rng.normal(0, 0.1, 16),
              rng.normal(size=x.shape)]
    inputs = pick(*(tf.cast(v, dtype) for v in values))
    want = tf.nest.flatten(tf.function(reference)(*inputs))
    for got in (kernel(*inputs), tf.function(kernel.chain)(*inputs)):
        for g, w in zip(tf.nest.flatten(got), want):
            assert g.dtype == w.dtype == dtype
            np.testing.assert_array_equal(_as_float(g), _as_float(w))


def test_fused_chain_is_one_xla_fusion():
    kernel = fusion.fused(lambda a, b: tf.nn.relu(a - b) * 2.0 + 1.0)
    hlo = kernel.experimental_get_compiler_ir(tf.ones([2, 3]), tf.ones([3]))(
        stage="optimized_hlo")
    assert hlo.count("fusion(") == 1 and "maximum" in hlo


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("layer_fn", ["rprelu", "scaled_shift"])
def test_fused_forward_and_gradients_equal_unfused(rng, dtype, layer_fn):
    """A layer's function with ``fuse``: its values and every gradient those of the
    plain ops' autodiff, bit for bit."""
    x = rng.normal(size=(2, 6, 6, 8))
    if layer_fn == "rprelu":
        params = (rng.normal(0, 0.1, 8), rng.normal(0.25, 0.3, 8), rng.normal(0, 0.1, 8))
        def apply(x, *p, fuse):
            return rprelu(x, *p, fuse=fuse)
    else:
        params = (rng.normal(0, 0.1, 8),)
        def apply(x, b, fuse):
            return scaled_shift(x, 0.7071, b, fuse=fuse)
    tensors = [tf.cast(v, dtype) for v in (x, *params)]
    dy = tf.cast(rng.normal(size=x.shape), dtype)
    results = []
    for fuse in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            y = apply(*tensors, fuse=fuse)
        results.append([y, *tape.gradient(y, tensors, output_gradients=dy)])
    for a, b in zip(*results):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(_as_float(a), _as_float(b))


def test_rprelu_layer_fuses_only_when_training(rng, monkeypatch):
    calls = []
    monkeypatch.setattr("bnn_keras.layers.activations._rprelu_forward",
                        _Recorder(calls, _rprelu_forward.chain))
    x = keras.Input((5, 5, 4))
    model = keras.Model(x, RPReLU()(x))
    data = tf.constant(rng.normal(size=(2, 5, 5, 4)), tf.float32)
    calls.clear()
    inference = model(data, training=False)
    assert calls == ["plain"]
    calls.clear()
    training = model(data, training=True)
    assert calls == ["fused"]
    np.testing.assert_array_equal(inference.numpy(), training.numpy())


def test_learnable_bias_fuses_its_16_bit_scaled_shift_when_training(rng, monkeypatch):
    from bnn_keras.layers import LearnableBias
    from bnn_keras.training.precision import precision_policy

    calls = []
    monkeypatch.setattr("bnn_keras.layers.activations._shift_forward",
                        _Recorder(calls, _shift_forward))
    with precision_policy("mixed_bfloat16"):
        x = keras.Input((5, 5, 4))
        model = keras.Model(x, LearnableBias(scale=0.5)(x))
    data = tf.constant(rng.normal(size=(2, 5, 5, 4)), tf.float32)
    inference = model(data, training=False)
    assert calls == []  # two plain ops
    training = model(data, training=True)
    assert calls == ["fused"] and training.dtype == tf.bfloat16
    np.testing.assert_array_equal(_as_float(inference), _as_float(training))


def test_evaluation_fuses_and_other_inference_stays_plain(rng, monkeypatch):
    """The trainer's evaluation traces RPReLU fused, with the same logits; a forward
    traced outside it (what export and ``predict`` trace) keeps the plain ops."""
    from bnn_keras.training import TrainingModel

    calls = []
    monkeypatch.setattr("bnn_keras.layers.activations._rprelu_forward",
                        _Recorder(calls, _rprelu_forward))
    x = keras.Input((5, 5, 4))
    net = keras.Model(x, keras.layers.Dense(3)(keras.layers.Flatten()(RPReLU()(x))))
    trainer = TrainingModel(net, agc_clip=0.0)
    trainer.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    data = tf.constant(rng.normal(size=(6, 5, 5, 4)), tf.float32)
    labels = tf.constant([0, 1, 2, 0, 1, 2])
    calls.clear()
    evaluated = trainer.evaluate(data, labels, batch_size=6, verbose=0)
    assert calls == ["fused"]
    calls.clear()
    plain = tf.function(lambda t: net(t, training=False))(data)
    assert calls == ["plain"]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, plain)
    assert evaluated == pytest.approx(float(loss), rel=1e-6)
    assert not fusion.fuse_forward(False)  # the context ended with the trace


class _Recorder:
    """Stands in for the compiled forward: records which form the layer called."""

    def __init__(self, calls: list, chain):
        self.calls, self._chain = calls, chain

    def chain(self, *args):
        self.calls.append("plain")
        return self._chain(*args)

    def __call__(self, *args):
        self.calls.append("fused")
        return self._chain(*args)
