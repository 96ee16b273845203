"""Distillation: the loss against numpy, consecutive KD's switch and weighting, teachers."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras.errors import BnnError
from bnn_keras.training import TrainingModel
from bnn_keras.training.distill import (
    TeacherSwitch,
    active_assistant,
    distribution_loss,
    load_teacher,
    multi_teacher_loss,
)


def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_soft_ce(s, t):
    return -(np_softmax(t) * np.log(np_softmax(s))).sum(-1)


def test_distribution_loss_matches_numpy(rng):
    s = rng.normal(size=(5, 7)).astype(np.float32)
    t = rng.normal(0, 3, size=(5, 7)).astype(np.float32)
    loss = distribution_loss(tf.constant(s), tf.constant(t)).numpy()
    np.testing.assert_allclose(loss, np_soft_ce(s, t).mean(), rtol=1e-5)
    # no label term: equal logits give the entropy of the teacher, not 0
    same = distribution_loss(tf.constant(t), tf.constant(t)).numpy()
    p = np_softmax(t)
    np.testing.assert_allclose(same, -(p * np.log(p)).sum(-1).mean(), rtol=1e-5)


def test_distribution_loss_gradient_is_student_only(rng):
    s = tf.Variable(rng.normal(size=(3, 4)).astype(np.float32))
    t = tf.Variable(rng.normal(size=(3, 4)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        loss = distribution_loss(s, t)
    g = tape.gradient(loss, s).numpy()
    assert tape.gradient(loss, t) is None
    np.testing.assert_allclose(g, (np_softmax(s.numpy()) - np_softmax(t.numpy())) / 3,
                               rtol=1e-4, atol=1e-6)


def test_multi_teacher_weighting_matches_numpy(rng):
    s = rng.normal(size=(6, 5)).astype(np.float32)
    ts = [rng.normal(0, 2, size=(6, 5)).astype(np.float32) for _ in range(2)]
    loss, alpha = multi_teacher_loss(tf.constant(s), [tf.constant(t) for t in ts],
                                     "softmax_ce")
    ce = np.stack([np_soft_ce(s, t) for t in ts], -1)
    a = np_softmax(ce)
    np.testing.assert_allclose(alpha.numpy(), a, rtol=1e-5)
    np.testing.assert_allclose(loss.numpy(), ((a * ce).sum(-1) / 2).mean(), rtol=1e-5)
    # the teacher the student disagrees with more gets the larger weight, per sample
    assert np.all((alpha.numpy()[:, 0] > 0.5) == (ce[:, 0] > ce[:, 1]))
    # BNext's own (the default): per-sample weights times each teacher's batch-mean loss
    batch, ba = multi_teacher_loss(tf.constant(s), [tf.constant(t) for t in ts])
    np.testing.assert_allclose(ba.numpy(), a, rtol=1e-5)
    np.testing.assert_allclose(batch.numpy(), ((a * ce.mean(0)).sum(-1) / 2).mean(), rtol=1e-5)
    assert not np.isclose(batch.numpy(), loss.numpy(), rtol=1e-3)
    uniform, ua = multi_teacher_loss(tf.constant(s), [tf.constant(t) for t in ts], "uniform")
    np.testing.assert_allclose(ua.numpy(), 0.5)
    np.testing.assert_allclose(uniform.numpy(), (ce.mean(-1) / 2).mean(), rtol=1e-5)
    one, _ = multi_teacher_loss(tf.constant(s), [tf.constant(ts[0])])
    np.testing.assert_allclose(one.numpy(), distribution_loss(s, ts[0]).numpy(), rtol=1e-6)


def test_assistant_switch_epochs():
    assert [active_assistant(e, 2, 10) for e in range(10)] == [0] * 5 + [1] * 5
    assert [active_assistant(e, 3, 6, [0, 1, 4]) for e in range(6)] == [0, 1, 1, 1, 2, 2]
    assert active_assistant(3, 0, 10) == -1


def _const_model(values, name):
    inputs = keras.Input((4,))
    zeros = keras.layers.Lambda(lambda x: x[:, :1] * 0.0)(inputs)
    out = keras.layers.Lambda(lambda z: z + tf.constant([values], tf.float32))(zeros)
    return keras.Model(inputs, out, name=name)


def _student():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, name="classifier")(inputs))


def test_consecutive_kd_switches_teacher_and_trains_on_it(rng):
    teacher = _const_model([0.0, 0.0, 3.0], "main")
    assistants = [_const_model([3.0, 0.0, 0.0], "a0"), _const_model([0.0, 3.0, 0.0], "a1")]
    trainer = TrainingModel(_student(), agc_clip=0.0, teacher=teacher, assistants=assistants)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    x = rng.normal(size=(8, 4)).astype(np.float32)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(int(trainer.assistant_index.numpy()))
            logits = trainer.teacher_logits(tf.constant(x))
            assert np.argmax(logits[0].numpy()[0]) == [0, 1][seen[-1]]
            assert np.argmax(logits[1].numpy()[0]) == 2

    history = trainer.fit(x, np.zeros(8, np.int32), epochs=4, batch_size=8, verbose=0,
                          callbacks=[TeacherSwitch(trainer.assistant_index, 2, 4), Record()])
    assert seen == [0, 0, 1, 1]
    assert all(np.isfinite(history.history["loss"]))
    # the student learnt the active assistant's and the main teacher's classes, not 0-only
    probs = tf.nn.softmax(trainer(x)).numpy().mean(0)
    assert probs[1] > 0.2 and probs[2] > 0.2


def test_kd_step_loss_matches_independent_computation(rng):
    teacher = _const_model([1.0, -1.0, 0.5], "main")
    trainer = TrainingModel(_student(), agc_clip=0.0, teacher=teacher)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    x = rng.normal(size=(5, 4)).astype(np.float32)
    expected = np_soft_ce(trainer(x).numpy(), np.tile([[1.0, -1.0, 0.5]], (5, 1))).mean()
    logs = trainer.train_on_batch(x, np.zeros(5, np.int32), return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    evaluated = trainer.evaluate(x, np.zeros(5, np.int32), verbose=0, return_dict=True)
    assert set(evaluated) == {"loss", "accuracy"}  # evaluation uses the label loss


def test_load_teacher_from_keras_file(tmp_path, rng):
    path = tmp_path / "t.keras"
    _student().save(path)
    teacher = load_teacher(str(path), num_classes=3, input_shape=(4,))
    assert not teacher.trainable and teacher.output_shape[-1] == 3
    (tmp_path / "run").mkdir()
    _student().save(tmp_path / "run" / "model.keras")
    assert load_teacher(str(tmp_path / "run"), num_classes=3, input_shape=(4,))
    with pytest.raises(BnnError, match="predicts 3 classes"):
        load_teacher(str(path), num_classes=10, input_shape=(4,))
    with pytest.raises(BnnError, match="unknown teacher"):
        load_teacher("keras:NoSuchNet", num_classes=3, input_shape=(4,))
