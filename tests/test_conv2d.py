"""bnn_keras.layers.conv2d: the conv with the matmul weight gradient."""

import numpy as np
import pytest
import tensorflow as tf

import bnn_keras.layers.conv2d as conv2d_module
from bnn_keras.layers import ScaledStdQuantConv2D
from bnn_keras.layers.conv2d import conv2d
from bnn_keras.training.precision import precision_policy


def _grads(conv, x, w, dy):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = conv(x, w)
    return (y, *tape.gradient(y, [x, w], output_gradients=dy))


@pytest.mark.parametrize("size,k,strides,padding", [
    (4, 3, 1, "SAME"), (5, 3, 2, "SAME"), (8, 3, 2, "SAME"), (6, 3, 1, "VALID"),
    (7, 1, 2, "SAME"), (9, 3, 2, "VALID"),
])
def test_matmul_weight_gradient_is_conv2ds(rng, monkeypatch, size, k, strides, padding):
    monkeypatch.setattr(conv2d_module, "_use_matmul", lambda x, dy: True)
    x = tf.constant(rng.normal(size=(3, size, size, 5)), tf.float32)
    w = tf.constant(rng.normal(size=(k, k, 5, 4)), tf.float32)
    y_ref = tf.nn.conv2d(x, w, strides, padding)
    dy = tf.constant(rng.normal(size=y_ref.shape), tf.float32)
    ref = _grads(lambda a, b: tf.nn.conv2d(a, b, strides, padding), x, w, dy)
    ours = _grads(lambda a, b: conv2d(a, b, strides, padding), x, w, dy)
    np.testing.assert_array_equal(ours[0], ref[0])  # the same forward op
    np.testing.assert_array_equal(ours[1], ref[1])  # the same input-gradient op
    np.testing.assert_allclose(ours[2], ref[2], rtol=1e-5, atol=1e-5)


def test_rule_picks_small_bfloat16_maps_only():
    small = tf.zeros((2, 8, 8, 4), tf.bfloat16)
    large = tf.zeros((2, 16, 16, 4), tf.bfloat16)
    assert conv2d_module._use_matmul(small, small)
    assert not conv2d_module._use_matmul(large, large)
    assert not conv2d_module._use_matmul(tf.cast(small, tf.float32), tf.cast(small, tf.float32))


def test_bfloat16_weight_gradient_within_rounding(rng):
    x = tf.constant(rng.normal(size=(8, 4, 4, 16)), tf.bfloat16)
    w = tf.constant(rng.normal(size=(3, 3, 16, 8)), tf.bfloat16)
    dy = tf.constant(rng.normal(size=(8, 4, 4, 8)), tf.bfloat16)
    _, _, ref = _grads(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"), x, w, dy)
    _, _, ours = _grads(lambda a, b: conv2d(a, b, 1, "SAME"), x, w, dy)
    ref, ours = (np.asarray(tf.cast(t, tf.float32)) for t in (ref, ours))
    exact = _grads(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"), *(tf.cast(t, tf.float64)
                                                               for t in (x, w, dy)))[2]
    # both are float32 sums of exact bf16 products, each rounded once to bfloat16
    for got in (ref, ours):
        np.testing.assert_allclose(got, exact, rtol=2 ** -8, atol=1e-2)


def test_binary_conv_layer_takes_the_matmul_gradient_in_bfloat16(rng, monkeypatch):
    calls = []
    original = conv2d_module.matmul_weight_gradient
    monkeypatch.setattr(conv2d_module, "matmul_weight_gradient",
                        lambda *a: calls.append(a) or original(*a))
    with precision_policy("mixed_bfloat16"):  # the input quantizer computes in bf16 too
        layer = ScaledStdQuantConv2D(8, 3, padding="same")
    x = tf.constant(rng.normal(size=(2, 4, 4, 8)), tf.float32)
    with tf.GradientTape() as tape:
        y = layer(x)
    grads = tape.gradient(y, layer.trainable_variables)
    assert calls and all(g is not None for g in grads)
    assert layer.compute_dtype == "bfloat16" and y.dtype == tf.bfloat16
    # float32: Conv2DBackpropFilter, the matmul path is not taken
    calls.clear()
    layer32 = ScaledStdQuantConv2D(8, 3, padding="same")
    with tf.GradientTape() as tape:
        y = layer32(x)
    tape.gradient(y, layer32.trainable_variables)
    assert not calls
