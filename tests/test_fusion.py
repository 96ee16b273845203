"""bnn_keras.fusion: the XLA-fused element-wise chains give their unfused ops' values bit
for bit, and only the training graph takes them."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras import fusion
from bnn_keras.layers import RPReLU
from bnn_keras.layers.activations import _rprelu_backward, _rprelu_forward, rprelu
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
    "approx_sign gradient": (_approx_sign_grad, lambda x, g, a, z, dy: (x, dy),
                             lambda x, dy: dy * tf.nn.relu(2.0 - 2.0 * tf.abs(x))),
}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", CHAINS)
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
def test_rprelu_fused_forward_and_gradients_equal_unfused(rng, dtype):
    tensors = [tf.cast(v, dtype) for v in (rng.normal(size=(2, 6, 6, 8)),
                                           rng.normal(0, 0.1, 8), rng.normal(0.25, 0.3, 8),
                                           rng.normal(0, 0.1, 8))]
    dy = tf.cast(rng.normal(size=(2, 6, 6, 8)), dtype)
    results = []
    for fuse in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            y = rprelu(*tensors, fuse=fuse)
        results.append([y, *tape.gradient(y, tensors, output_gradients=dy)])
    for a, b in zip(*results):
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
