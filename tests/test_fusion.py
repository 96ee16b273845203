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


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_chains_equal_their_ops(rng, dtype):
    x = rng.normal(0, 0.8, (4, 9, 9, 16)).astype(np.float32)
    x.flat[:4] = [0.0, 1.0, -1.0, 3.0]  # the kinks of the sign's gradient
    args = [tf.cast(v, dtype) for v in (x, rng.normal(0, 0.1, 16), rng.normal(0.25, 0.5, 16),
                                        rng.normal(0, 0.1, 16), rng.normal(size=x.shape))]
    x, bias_in, alpha, bias_out, dy = args
    x = tf.tensor_scatter_nd_update(x, [[0, 0, 1]], [bias_in[:16]])  # s == 0 exactly
    for kernel, inputs in ((_rprelu_forward, (x, bias_in, alpha, bias_out)),
                           (_rprelu_backward, (x, bias_in, alpha, dy)),
                           (_approx_sign_grad, (x, dy))):
        compiled = tf.nest.flatten(kernel(*inputs))
        unfused = tf.nest.flatten(tf.function(kernel.python_function)(*inputs))
        for got, want in zip(compiled, unfused):
            assert got.dtype == want.dtype == dtype
            np.testing.assert_array_equal(_as_float(got), _as_float(want))


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
    original = _rprelu_forward.python_function
    monkeypatch.setattr("bnn_keras.layers.activations._rprelu_forward",
                        _Recorder(calls, original))
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

    def __init__(self, calls: list, fn):
        self.calls, self.python_function = calls, self._plain(calls, fn)
        self.fn = fn

    @staticmethod
    def _plain(calls, fn):
        def plain(*args):
            calls.append("plain")
            return fn(*args)
        return plain

    def __call__(self, *args):
        self.calls.append("fused")
        return self.fn(*args)
