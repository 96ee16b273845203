"""The BN-free building blocks: formulas against numpy, and `.keras` round trips."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras.keras_files import load_keras_model
from bnn_keras.layers import LearnableBias, RPReLU, ScaledStdConv2D, ScaledStdQuantConv2D
from bnn_keras.layers.activations import rprelu


def np_standardize(w, eps=1e-5):
    flat = w.reshape(-1, w.shape[-1])
    return (w - flat.mean(0)) / (flat.std(0) + eps) / np.sqrt(flat.shape[0])


def np_conv_valid(x, w, stride=1):
    """Direct NHWC convolution, 'valid', by loops over the kernel window."""
    n, h, wd, c = x.shape
    kh, kw, _, o = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, o))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
            out += np.einsum("nhwc,co->nhwo", patch, w[i, j])
    return out


def test_scaled_std_conv_matches_numpy(rng):
    layer = ScaledStdConv2D(6, 3, padding="valid")
    x = rng.normal(size=(2, 7, 7, 4)).astype(np.float32)
    layer(x)
    gain = rng.uniform(0.5, 2.0, 6).astype(np.float32)
    layer.gain.assign(gain)
    w = layer.kernel.numpy()
    expected = np_conv_valid(x, np_standardize(w) * gain)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert [v.name.split("/")[-1].split(":")[0] for v in layer.weights] == ["kernel", "gain"]


def test_scaled_std_quant_conv_matches_numpy_with_one_padding(rng):
    layer = ScaledStdQuantConv2D(5, 3, padding="same", strides=1)
    x = rng.normal(size=(2, 6, 6, 4)).astype(np.float32)
    layer(x)
    gain = rng.uniform(0.5, 2.0, 5).astype(np.float32)
    layer.gain.assign(gain)
    w_hat = np_standardize(layer.kernel.latent_variable.numpy())
    s = np.abs(w_hat).reshape(-1, 5).mean(0)
    wb = gain * s * np.where(w_hat >= 0, 1.0, -1.0)
    xb = np.pad(np.where(x >= 0, 1.0, -1.0), ((0, 0), (1, 1), (1, 1), (0, 0)),
                constant_values=1.0)
    np.testing.assert_allclose(layer(x).numpy(), np_conv_valid(xb, wb), rtol=1e-4, atol=1e-4)
    assert layer.pad_values == 1.0 and layer.input_quantizer.precision == 1


def test_quant_conv_latent_gradient_is_ste_through_standardisation(rng):
    layer = ScaledStdQuantConv2D(3, 1)
    x = tf.constant(rng.normal(size=(1, 4, 4, 2)).astype(np.float32))
    layer(x)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x))
    grad = tape.gradient(y, layer.trainable_weights[0])
    assert grad is not None and np.abs(grad.numpy()).sum() > 0


def test_learnable_bias_and_rprelu_match_numpy(rng):
    x = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    lb = LearnableBias(scale=0.5)
    lb(x)
    b = rng.normal(size=4).astype(np.float32)
    lb.bias.assign(b)
    np.testing.assert_allclose(lb(x).numpy(), 0.5 * x + b, rtol=1e-6)

    rp = RPReLU()
    rp(x)
    np.testing.assert_allclose(rp.alpha.numpy(), 0.25)
    g, a, z = (rng.normal(size=4).astype(np.float32) for _ in range(3))
    rp.bias_in.assign(g)
    rp.alpha.assign(a)
    rp.bias_out.assign(z)
    expected = np.where(x - g >= 0, x - g, a * (x - g)) + z
    np.testing.assert_allclose(rp(x).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_rprelu_gradients_are_torch_prelus(rng, dtype):
    """PyTorch's PReLU backward between the shifts: dy where s > 0, else alpha * dy
    (s = 0 included), and d alpha = sum(dy * s) over s <= 0; a negative alpha too."""
    x = rng.normal(size=(2, 5, 5, 4)).astype(np.float32)
    g = np.array([0.1, -0.2, 0.0, 0.3], np.float32)
    a = np.array([0.25, -0.5, 1.5, 0.0], np.float32)
    z = np.array([0.0, 0.1, -0.1, 0.2], np.float32)
    x[0, 0, 0] = g  # s == 0 exactly in every channel
    dy = rng.normal(size=x.shape).astype(np.float32)
    tensors = [tf.cast(tf.constant(v), dtype) for v in (x, g, a, z)]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        y = rprelu(*tensors)
    grads = [tf.cast(t, tf.float32).numpy()
             for t in tape.gradient(y, tensors, output_gradients=tf.cast(dy, dtype))]
    x, g, a, z, dy = (tf.cast(tf.cast(v, dtype), tf.float32).numpy() for v in (x, g, a, z, dy))
    s = tf.cast(tf.cast(x - g, dtype), tf.float32).numpy()  # the shift, in the layer's dtype
    ds = np.where(s > 0, dy, tf.cast(tf.cast(a * dy, dtype), tf.float32).numpy())
    np.testing.assert_array_equal(grads[0], ds)
    tol = dict(rtol=2e-2, atol=2e-2) if dtype == "bfloat16" else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads[1], -ds.sum((0, 1, 2)), **tol)
    np.testing.assert_allclose(grads[2], (dy * np.minimum(s, 0)).sum((0, 1, 2)), **tol)
    np.testing.assert_allclose(grads[3], dy.sum((0, 1, 2)), **tol)
    expected = np.where(s >= 0, s, a * s) + z
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), expected, **tol)


@pytest.mark.parametrize("make", [
    lambda: ScaledStdConv2D(4, 3, strides=2, padding="same", output_scale=0.5, eps=1e-4),
    lambda: ScaledStdQuantConv2D(4, 3, padding="same", output_scale=0.2),
    lambda: LearnableBias(scale=0.8),
    lambda: RPReLU(alpha_initializer=0.1),
], ids=["ScaledStdConv2D", "ScaledStdQuantConv2D", "LearnableBias", "RPReLU"])
def test_keras_round_trip(make, tmp_path, rng):
    inputs = keras.Input((8, 8, 3))
    layer = make()
    model = keras.Model(inputs, layer(inputs))
    for w in model.weights:  # move every weight off its initial value
        w.assign(w + rng.normal(0, 0.1, w.shape).astype(np.float32))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_keras_model(path)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    assert type(loaded.layers[1]) is type(layer)
    assert loaded.layers[1].get_config() == layer.get_config()
