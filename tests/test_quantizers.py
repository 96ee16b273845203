"""Weight standardisation and binarisation against independent numpy computations."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras.layers import ScaledStdQuantConv2D
from bnn_keras.quantizers import (
    ApproxSign,
    StandardizedSign,
    approx_sign,
    scaled_sign,
    standardize_kernel,
    standardized_sign,
)


def np_standardize(w, eps=1e-5):
    flat = w.reshape(-1, w.shape[-1])
    mean = flat.mean(0)
    std = flat.std(0)  # population std
    return (w - mean) / (std + eps) / np.sqrt(flat.shape[0])


def test_standardize_matches_numpy(rng):
    w = rng.normal(0.3, 2.0, (3, 3, 5, 7)).astype(np.float32)
    got = standardize_kernel(tf.constant(w)).numpy()
    np.testing.assert_allclose(got, np_standardize(w), rtol=1e-5, atol=1e-6)
    # each output filter: zero mean, squared norm ~1
    flat = got.reshape(-1, 7)
    np.testing.assert_allclose(flat.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose((flat**2).sum(0), 1, rtol=1e-3)


def test_scaled_sign_forward_matches_numpy(rng):
    w = rng.normal(0, 0.5, (3, 3, 4, 6)).astype(np.float32)
    w[0, 0, 0, 0] = 0.0
    got = scaled_sign(tf.constant(w)).numpy()
    s = np.abs(w).reshape(-1, 6).mean(0)
    expected = s * np.where(w >= 0, 1.0, -1.0)  # sign(0) = +1
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_scaled_sign_gradient_is_clipped_identity_not_scaled(rng):
    w = tf.constant(rng.normal(0, 1.2, (2, 2, 3, 4)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(2, 2, 3, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = tf.reduce_sum(scaled_sign(w) * upstream)
    grad = tape.gradient(y, w).numpy()
    expected = np.where(np.abs(w.numpy()) <= 1.0, upstream.numpy(), 0.0)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)
    assert (np.abs(w.numpy()) > 1).any() and (np.abs(w.numpy()) <= 1).any()


def test_standardized_sign_is_marked_binary_and_serialises():
    q = StandardizedSign(eps=1e-4)
    assert q.precision == 1
    assert StandardizedSign.from_config(q.get_config()).eps == 1e-4


def test_standardized_sign_is_the_composition_with_its_gradient(rng):
    """The fused op: same forward (exactly one magnitude per channel) and the same
    gradient as autodiff through ``scaled_sign(standardize_kernel(w))``."""
    w = tf.constant(rng.normal(0.2, 1.5, (3, 3, 8, 5)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(3, 3, 8, 5)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(w)
        fused = standardized_sign(w)
        composed = scaled_sign(standardize_kernel(w))
        y_fused = tf.reduce_sum(fused * upstream)
        y_composed = tf.reduce_sum(composed * upstream)
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-6, atol=1e-7)
    magnitudes = np.abs(fused.numpy()).reshape(-1, 5)
    assert (magnitudes == magnitudes[0]).all()  # exact, unlike the composition's STE form
    expected = tape.gradient(y_composed, w).numpy()
    got = tape.gradient(y_fused, w).numpy()
    assert np.abs(expected).max() > 0.01
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # |W_hat| < 1 always (each channel's squared norm is below 1): the STE clip never binds
    assert np.abs(standardize_kernel(w).numpy()).max() < 1.0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_approx_sign_is_larqs_bit_for_bit(rng, dtype):
    x = rng.normal(0, 0.8, (4, 6, 6, 8)).astype(np.float32)
    x.flat[:6] = [0.0, 1.0, -1.0, 1.0000001, -0.9999999, 3.0]  # the kinks and the clip
    x = tf.cast(tf.constant(x), dtype)
    dy = tf.cast(tf.constant(rng.normal(0, 1, x.shape).astype(np.float32)), dtype)
    grads = []
    for fn in (approx_sign, lq.quantizers.approx_sign):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        grads.append(tape.gradient(y, x, output_gradients=dy))
        np.testing.assert_array_equal(tf.cast(y, tf.float32), np.where(
            tf.cast(x, tf.float32) >= 0, 1.0, -1.0))
    ours, larqs = (tf.cast(g, tf.float32).numpy() for g in grads)
    np.testing.assert_array_equal(ours, larqs)
    xf = tf.cast(x, tf.float32).numpy()
    assert np.all(ours[np.abs(xf) > 1] == 0) and np.any(ours[np.abs(xf) < 1] != 0)


def test_binary_convs_default_to_our_approx_sign():
    layer = ScaledStdQuantConv2D(4, 3)
    assert isinstance(layer.input_quantizer, ApproxSign) and layer.input_quantizer.precision == 1
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again.input_quantizer, ApproxSign)

