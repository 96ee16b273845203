"""eval, landscape and inspect on tiny models and hand-made run folders."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from bnn_keras import data
from bnn_keras.insight import (
    evaluate,
    filter_normalized_direction,
    layer_stats,
    loss_landscape,
)
from bnn_keras.layers import LearnableBias, RPReLU, ScaledStdConv2D, ScaledStdQuantConv2D
from bnn_keras.training.checkpoints import first_checkpoint_prefix
from tests.cli_helpers import assert_one_line_error, run_main

pytestmark = pytest.mark.xdist_group("insight")  # its module fixture runs once


def tiny_model(shape=(32, 32, 3)) -> keras.Model:
    x = keras.Input(shape)
    h = ScaledStdConv2D(8, 3, strides=2, padding="same", name="stem_conv")(x)
    b = ScaledStdQuantConv2D(8, 3, padding="same", output_scale=0.2,
                             name="b1_conv")(LearnableBias(name="b1_move")(h))
    h = keras.layers.Add(name="b1_add")([h, RPReLU(name="b1_rprelu")(b)])
    b = ScaledStdQuantConv2D(8, 3, padding="same", output_scale=0.2,
                             name="b2_conv")(LearnableBias(scale=0.98, name="b2_move")(h))
    h = keras.layers.Add(name="b2_add")([h, RPReLU(name="b2_rprelu")(b)])
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, keras.layers.Dense(10, name="classifier")(h))


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = data.digits_arrays()
    return x_train[:64], y_train[:64], x_test, y_test


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as `bnn-keras train` leaves it: config, the permanent first-epoch
    checkpoint (written with ``write``, as EpochCheckpoint does), the rolling one, model."""
    run = tmp_path / "tiny-run"
    model = tiny_model()
    ckpt = tf.train.Checkpoint(net=model)
    manager = tf.train.CheckpointManager(ckpt, run / "checkpoints", max_to_keep=1)
    ckpt.write(str(first_checkpoint_prefix(run)))
    manager.save(1)
    rng = np.random.default_rng(1)
    for v in model.trainable_variables:  # "training": move the weights
        v.assign(v + rng.normal(0, 0.05, v.shape).astype(np.float32))
    manager.save(2)
    model.save(run / "model.keras")
    (run / "config.json").write_text(json.dumps({"dataset": "digits", "model": "tiny"}))
    return run


def test_filter_normalized_direction_matches_filter_norms(rng):
    weights = [rng.normal(size=(3, 3, 4, 6)).astype(np.float32),
               rng.normal(size=(5, 7)).astype(np.float32), np.ones(6, np.float32)]
    d = filter_normalized_direction(weights, np.random.default_rng(3))
    for w, dd in zip(weights[:2], d[:2]):
        axes = tuple(range(w.ndim - 1))
        np.testing.assert_allclose(np.sqrt((dd**2).sum(axes)), np.sqrt((w**2).sum(axes)),
                                   rtol=1e-5)
        assert not np.allclose(dd, w)
    np.testing.assert_array_equal(d[2], 0)


def test_landscape_origin_is_the_models_loss_and_seed_fixes_grid(digits):
    x, y = digits[0], digits[1]
    model = tiny_model()
    before = [v.numpy().copy() for v in model.weights]
    grid = loss_landscape(model, x, y, points=3, span=0.5, seed=7, batch_size=32)
    logits = model(x, training=False)
    expected = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits))
    assert grid.loss.shape == (3, 3)
    assert grid.loss[1, 1] == pytest.approx(expected, rel=1e-4)  # float32 batch sums
    assert not np.allclose(grid.loss, grid.loss[1, 1])  # the directions change something
    calls = []
    again = loss_landscape(model, x, y, points=3, span=0.5, seed=7, batch_size=32,
                           progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_allclose(again.loss, grid.loss, rtol=1e-6)
    assert calls == [(i, 9) for i in range(1, 10)]  # after every grid point
    other = loss_landscape(model, x, y, points=3, span=0.5, seed=8, batch_size=32)
    assert not np.allclose(other.loss, grid.loss)
    for b, v in zip(before, model.weights):  # weights restored
        np.testing.assert_array_equal(b, v.numpy())


def test_eval_keras_and_tflite_agree(tmp_path, capsys):
    from bnn_keras.export import export_model

    model = tiny_model()
    model.save(tmp_path / "m.keras")
    export_model(model, tmp_path / "m.tflite", num_samples=4)
    a = evaluate(str(tmp_path / "m.keras"), "digits", "test", limit=60)
    b = evaluate(str(tmp_path / "m.tflite"), "digits", "test", limit=60)
    assert a["samples"] == b["samples"] == 60
    assert a["top1"] == pytest.approx(b["top1"], abs=1 / 60)
    assert 0 <= a["top1"] <= a["top5"] <= 1
    code, out, err = run_main(["eval", str(tmp_path / "m.tflite"), "--limit", "20", "--json"],
                              capsys)
    assert code == 0, err
    assert json.loads(out)["format"] == "tflite"


def test_landscape_and_inspect_commands_write_pictures(run_dir, capsys):
    code, out, err = run_main(["landscape", str(run_dir), "--points", "3", "--samples", "32"],
                              capsys)
    assert code == 0, err
    saved = np.load(run_dir / "landscape" / "landscape.npz")
    assert saved["loss"].shape == (3, 3)
    for name, size in [("landscape_contour.png", (500, 420)),
                       ("landscape_surface.png", (550, 450))]:
        with Image.open(run_dir / "landscape" / name) as img:
            assert img.size == size

    code, out, err = run_main(["inspect", str(run_dir), "--samples", "16"], capsys)
    assert code == 0, err
    assert "sign flips measured from ckpt-1" in out
    rows = (run_dir / "inspect" / "inspect.csv").read_text().splitlines()
    assert sum(r.startswith("binary_layer") for r in rows) == 2
    assert sum(r.startswith("block") for r in rows) == 2
    with Image.open(run_dir / "inspect" / "inspect.png") as img:
        assert img.size[0] > 300 and img.size[1] > 200


def test_landscape_defaults_and_full_grid(run_dir, capsys, monkeypatch):
    """The default grid is 9 x 9 on 128 images, ``--full`` 21 x 21 on 512, with a
    progress bar on stderr."""
    from bnn_keras.insight import landscape as lib

    seen = []

    def fake(model, x, y, *, points, progress, **kw):
        seen.append((points, len(y)))
        for done in range(1, points * points + 1):
            progress(done, points * points)
        return lib.Landscape(np.zeros(points), np.zeros(points), np.ones((points, points)),
                             np.ones((points, points)), 0.0)

    monkeypatch.setattr(lib, "loss_landscape", fake)
    code, out, err = run_main(["landscape", str(run_dir)], capsys)
    assert code == 0, err
    assert "9x9 grid on 128 digits images" in out and "tiny-run" in err  # the bar's label
    code, out, err = run_main(["landscape", str(run_dir), "--full"], capsys)
    assert code == 0, err
    assert seen == [(9, 128), (21, 512)]


def test_sign_flip_ratio_counts_flips():
    model = tiny_model()
    first = keras.models.clone_model(model)
    first.set_weights(model.get_weights())
    stats = layer_stats(model, first)
    assert all(s.sign_flip_ratio == 0 for s in stats)
    conv = model.get_layer("b1_conv")
    latent = conv.kernel.latent_variable
    latent.assign(-latent)  # every standardised weight flips sign
    stats = {s.layer: s for s in layer_stats(model, first)}
    assert stats["b1_conv"].sign_flip_ratio > 0.99
    assert stats["b2_conv"].sign_flip_ratio == 0


def test_bad_input(tmp_path, capsys):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    code, _, err = run_main(["inspect", str(empty)], capsys)
    assert_one_line_error(code, err, "has no model.keras")
    code, _, err = run_main(["landscape", str(empty)], capsys)
    assert_one_line_error(code, err, "has no model.keras")
    small = tmp_path / "small.keras"
    tiny_model((16, 16, 3)).save(small)
    code, _, err = run_main(["eval", str(small), "--limit", "8"], capsys)
    assert_one_line_error(code, err, "expects (16, 16, 3)")


def test_eval_warns_when_class_counts_differ(tmp_path, capsys):
    x = keras.Input((32, 32, 3))
    model = keras.Model(x, keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "four.keras")
    code, out, err = run_main(["eval", str(tmp_path / "four.keras"), "--limit", "8"], capsys)
    assert code == 0, err
    assert "top-1" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ")
    assert "4 classes" in lines[0] and "10 classes" in lines[0]
    code, out, err = run_main(["eval", str(tmp_path / "four.keras"), "--limit", "8", "--json"],
                              capsys)
    assert json.loads(out)["model_classes"] == 4 and json.loads(out)["dataset_classes"] == 10


def test_landscape_points_must_be_odd(run_dir, capsys):
    code, _, err = run_main(["landscape", str(run_dir), "--points", "4"], capsys)
    assert_one_line_error(code, err, "odd")
    assert not (run_dir / "landscape").exists()


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_full_disk_leaves_the_earlier_landscape_and_inspection_whole(run_dir, capsys,
                                                                       monkeypatch):
    from tests.full_disk import fill_disk

    args = {"landscape": ["--points", "3", "--samples", "16"], "inspect": ["--samples", "8"]}
    before = {}
    for command, extra in args.items():
        code, _, err = run_main([command, str(run_dir), *extra], capsys)
        assert code == 0, err
        before[command] = _files(run_dir / command)
    with monkeypatch.context() as patch:
        fill_disk(patch, run_dir)
        for command, extra in args.items():
            code, _, err = run_main([command, str(run_dir), *extra], capsys)
            last = err.strip().splitlines()[-1]  # landscape's progress bar comes first
            assert code == 1 and "Traceback" not in err and "Exception ignored" not in err
            assert last.startswith(f"error: cannot write {run_dir / command}/"), err
            assert last.endswith("No space left on device")
            assert _files(run_dir / command) == before[command]  # no temporary file either


@pytest.mark.parametrize("option,value", [("--span", "1e308"), ("--seed", "-1")])
def test_landscape_span_and_seed_are_bounded(option, value, run_dir, capsys):
    code, _, err = run_main(["landscape", str(run_dir), option, value], capsys)
    assert_one_line_error(code, err, option)
    assert not (run_dir / "landscape").exists()
