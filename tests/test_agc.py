"""Adaptive gradient clipping against numpy, and where the train step applies it."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras.training import TrainingModel, adaptive_clip


def np_agc(g, w, clip, eps=1e-3):
    if w.ndim <= 1:
        wn, gn = np.linalg.norm(w), np.linalg.norm(g)
    else:
        axes = tuple(range(w.ndim - 1))
        wn = np.sqrt((w**2).sum(axes, keepdims=True))
        gn = np.sqrt((g**2).sum(axes, keepdims=True))
    max_norm = clip * np.maximum(wn, eps)
    return np.where(gn > max_norm, g * max_norm / np.maximum(gn, 1e-6), g)


def test_adaptive_clip_matches_numpy_per_layout(rng):
    shapes = [(3, 3, 4, 5), (6, 7), (5,), ()]
    ws = [rng.normal(size=s).astype(np.float32) for s in shapes]
    ws.append(np.zeros((2, 3), np.float32))  # eps floor: max_norm = clip * eps
    gs = [rng.normal(0, 3.0, w.shape).astype(np.float32) for w in ws]
    gs[1][:, 0] *= 1e-4  # one dense column below its limit stays untouched
    out = adaptive_clip([tf.constant(g) for g in gs], [tf.Variable(w) for w in ws], 0.05)
    for o, g, w in zip(out, gs, ws):
        np.testing.assert_allclose(o.numpy(), np_agc(g, w, 0.05), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out[1].numpy()[:, 0], gs[1][:, 0])
    assert not np.allclose(out[0].numpy(), gs[0])


def test_clip_factor_zero_is_off_and_none_passes(rng):
    g = tf.constant(rng.normal(size=(3, 3)).astype(np.float32))
    out = adaptive_clip([g, None], [tf.Variable(tf.zeros((3, 3))), tf.Variable(1.0)], 0.0)
    assert out[0] is g and out[1] is None
    out = adaptive_clip([None], [tf.Variable(1.0)], 0.02)
    assert out == [None]


def test_train_step_clips_all_but_the_classifier(rng):
    inputs = keras.Input((4,))
    h = keras.layers.Dense(8, name="hidden")(inputs)
    net = keras.Model(inputs, keras.layers.Dense(3, name="classifier")(h))
    trainer = TrainingModel(net, agc_clip=1e-3)
    grads = [tf.constant(rng.normal(0, 10, v.shape).astype(np.float32))
             for v in trainer.trainable_variables]
    clipped = trainer.clip_gradients(grads, trainer.trainable_variables)
    names = [v.name for v in trainer.trainable_variables]
    for name, g, c in zip(names, grads, clipped):
        if name.startswith("classifier"):
            np.testing.assert_array_equal(c.numpy(), g.numpy())
        else:
            assert np.linalg.norm(c.numpy()) < np.linalg.norm(g.numpy())
