"""Recipes, optimisers and schedules, clipping and decay, and what every run folder holds."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras import data as data_lib
from bnn_keras import models
from bnn_keras.data.base import Dataset
from bnn_keras.errors import BnnError
from bnn_keras.training import TrainConfig, TrainingModel
from bnn_keras.training.checkpoints import first_checkpoint_prefix
from bnn_keras.training.optim import (
    TorchAdam,
    WeightDecay,
    build_optimizer,
    current_learning_rate,
)
from bnn_keras.training.recipes import load_recipe
from bnn_keras.training.schedules import WarmupCosine, WarmupLinear, build_schedule

RECIPES = sorted(Path("zoo/recipes").rglob("*.json"))


def test_recipes_exist_for_the_issue():
    names = {p.stem for p in RECIPES}
    assert {"reactnet_18_bf_cifar10", "reactnet_18_bf_cifar100", "reactnet_a_bn_imagenet",
            "reactnet_a_bf_imagenet", "reactnet_a_none_imagenet", "birealnet_18_imagenet",
            "bnext_tiny_imagenet"} <= names
    families = {models.get(json.loads(p.read_text())["config"]["model"]).family
                for p in RECIPES if p.parent.name == "digits"}
    assert {"reactnet", "birealnet", "bnext", "larq_zoo"} <= families


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_resolves(path):
    raw = json.loads(path.read_text())
    for stage in sorted(raw.get("stages") or {None: 0}):
        values = load_recipe(path, None if stage is None else int(stage))
        if stage == "2":
            values["init_from"] = "runs/stage1"
        config = TrainConfig.from_dict(values)
        entry = models.get(config.model)
        assert config.variant in entry.variants
        assert data_lib.is_known(config.dataset)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_recipes_build_the_official_imagenet_stem(dataset):
    """BNN_NoBN builds ReActNet-18 with its 7x7/2 stem and max-pool on CIFAR too."""
    config = TrainConfig.from_dict(load_recipe(f"zoo/recipes/reactnet_18_bf_{dataset}.json"))
    assert config.model_options == {"stem": "imagenet", "init": "torch"}
    net = models.create(config.model, config.variant, 10, (32, 32, 3), **config.model_options)
    assert net.get_layer("stem_conv").kernel_size == (7, 7)
    assert net.get_layer("stem_pool").strides == (2, 2)
    with pytest.raises(BnnError, match="model_options"):
        TrainConfig(model_options={"stem": ["imagenet"]})


def test_recipe_values_and_errors(tmp_path):
    bnext = load_recipe("zoo/recipes/bnext_tiny_imagenet.json")
    assert (bnext["optimizer"], bnext["weight_decay"], bnext["kernel_weight_decay"],
            bnext["grad_clip_norm"], bnext["augment"]) == ("adamw", 1e-3, 1e-8, 5.0,
                                                           "randaugment")
    assert (bnext["eval_crop_pct"], bnext["eval_interpolation"]) == (0.95, "bicubic")
    stage1 = load_recipe("zoo/recipes/reactnet_a_bf_imagenet.json", 1)
    assert stage1["kernel_weight_decay"] == 1e-5 and stage1["stage"] == 1
    for name in ("reactnet_a_bf", "reactnet_a_bn", "reactnet_a_none", "birealnet_18"):
        raw = json.loads(Path(f"zoo/recipes/{name}_imagenet.json").read_text())
        assert raw["config"]["lighting"] == 0.1 and "train.py:1" in raw["reference"], name
    assert TrainConfig().lighting == 0.0 and TrainConfig().eval_crop_pct == 0.875
    with pytest.raises(BnnError, match="eval_crop_pct"):
        TrainConfig(eval_crop_pct=0.0)
    with pytest.raises(BnnError, match="eval_interpolation"):
        TrainConfig(eval_interpolation="nearest")
    with pytest.raises(BnnError, match="--stage"):
        load_recipe("zoo/recipes/reactnet_a_bf_imagenet.json")
    with pytest.raises(BnnError, match="stage 2 starts from stage 1"):
        TrainConfig.from_dict(load_recipe("zoo/recipes/reactnet_a_bf_imagenet.json", 2))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"config": {"modle": "x"}}))
    with pytest.raises(BnnError, match="unknown settings"):
        load_recipe(bad)
    bad.write_text("{not json")
    with pytest.raises(BnnError, match="not valid JSON"):
        load_recipe(bad)


def test_cli_flags_override_the_recipe(monkeypatch, capsys):
    import bnn_keras.training.run as run_mod
    from bnn_keras.cli import main

    seen = {}

    def fake_train(config, **kwargs):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(run_mod, "train", fake_train)
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "zoo/recipes/digits/bnext_tiny.json", "--epochs", "2",
              "--weight-decay", "0.5", "--variant", "bf"])
    config = seen["config"]
    assert (config.model, config.variant, config.epochs, config.weight_decay) == (
        "bnext_tiny", "bf", 2, 0.5)
    assert config.optimizer == "adamw" and config.grad_clip_norm == 5.0  # from the recipe
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "zoo/recipes/bnext_tiny_imagenet.json", "--lighting", "0.2",
              "--eval-crop-pct", "0.9"])
    config = seen["config"]
    assert (config.lighting, config.eval_crop_pct, config.eval_interpolation) == (
        0.2, 0.9, "bicubic")
    with pytest.raises(SystemExit):
        main(["train"])
    assert seen["config"] == TrainConfig()  # no recipe, no flags: the old defaults


def test_schedules_match_their_formulas():
    config = TrainConfig(epochs=10, learning_rate=1e-3)
    linear = build_schedule(config, 10)
    np.testing.assert_allclose([float(linear(s)) for s in (0, 50, 100)], [1e-3, 5e-4, 0.0],
                               atol=1e-9)
    cos = WarmupCosine(1e-3, total_steps=100, warmup_steps=10, warmup_start=1e-5,
                       minimum=1e-7)
    steps = np.array([0, 5, 10, 55, 100, 150])
    progress = np.clip((steps - 10) / 90, 0, 1)
    expect = np.where(steps < 10, 1e-5 + (1e-3 - 1e-5) * steps / 10,
                      1e-7 + 0.5 * (1e-3 - 1e-7) * (1 + np.cos(np.pi * progress)))
    np.testing.assert_allclose([float(cos(s)) for s in steps], expect, rtol=1e-5)
    bnext = build_schedule(TrainConfig(epochs=10, schedule="cosine", warmup_epochs=2,
                                       warmup_lr=1e-5, min_lr=1e-7), 10)
    assert isinstance(bnext, WarmupCosine) and bnext.warmup_steps == 20
    assert keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(cos)).get_config() == cos.get_config()


def test_linear_warmup_decays_to_min_lr():
    config = TrainConfig(epochs=10, learning_rate=1e-3, warmup_epochs=2, warmup_lr=1e-5,
                         min_lr=1e-4)
    schedule = build_schedule(config, 10)
    assert isinstance(schedule, WarmupLinear)
    steps = np.array([0, 10, 20, 60, 100, 130])
    expect = np.where(steps < 20, 1e-5 + (1e-3 - 1e-5) * steps / 20,
                      1e-4 + (1e-3 - 1e-4) * (1 - np.clip((steps - 20) / 80, 0, 1)))
    np.testing.assert_allclose([float(schedule(s)) for s in steps], expect, rtol=1e-6)
    assert float(schedule(100)) == pytest.approx(1e-4)
    no_floor = build_schedule(TrainConfig(epochs=10, learning_rate=1e-3, warmup_epochs=2), 10)
    assert float(no_floor(100)) == 0.0 and float(no_floor(60)) == pytest.approx(5e-4)


def test_current_learning_rate_is_the_next_steps():
    config = TrainConfig(epochs=4, learning_rate=1e-3, schedule="cosine", warmup_epochs=1,
                         warmup_lr=1e-5)
    optimizer = build_optimizer(config, 5)
    schedule = build_schedule(config, 5)
    var = tf.Variable([1.0, 2.0])
    for step in range(7):
        assert float(current_learning_rate(optimizer)) == float(schedule(step))
        optimizer.apply_gradients([(tf.constant([0.1, 0.1]), var)])
    assert float(current_learning_rate(TorchAdam(3e-4))) == pytest.approx(3e-4)


def _net():
    inputs = keras.Input((2, 2, 1))
    x = keras.layers.Conv2D(2, 2, use_bias=False, name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="classifier")(x))


def _zero_loss_step(trainer):
    """One step whose loss gradient is 0 (SGD, lr 0.1): only decay moves the weights."""
    trainer.compile(optimizer=keras.optimizers.SGD(0.1),
                    loss=lambda y, p: tf.reduce_sum(p) * 0.0)
    before = [v.numpy().copy() for v in trainer.trainable_variables]
    trainer.train_on_batch(np.ones((1, 2, 2, 1), np.float32), np.zeros(1))
    return before, [v.numpy() for v in trainer.trainable_variables]


@pytest.mark.parametrize("decoupled", [False, True])
def test_weight_decay_groups(decoupled):
    trainer = TrainingModel(_net(), agc_clip=0.0,
                            weight_decay=WeightDecay(kernel=0.1, other=0.01,
                                                     decoupled=decoupled))
    before, after = _zero_loss_step(trainer)
    for v, b, a in zip(trainer.trainable_variables, before, after):
        rate = 0.1 if v.shape.rank == 4 else 0.01
        # SGD: L2 gives w - lr*rate*w; decoupled gives w - lr*rate*w too (then a 0 step)
        np.testing.assert_allclose(a, b * (1 - 0.1 * rate), rtol=1e-5, err_msg=v.name)


def test_grad_clip_norm_in_train_step(rng):
    trainer = TrainingModel(_net(), agc_clip=0.0, grad_clip_norm=0.5)
    trainer.compile(optimizer=keras.optimizers.SGD(1.0),
                    loss=lambda y, p: tf.reduce_sum(p) * 100.0)
    before = [v.numpy().copy() for v in trainer.trainable_variables]
    trainer.train_on_batch(rng.normal(size=(1, 2, 2, 1)).astype(np.float32), np.zeros(1))
    step = np.sqrt(sum(((v.numpy() - b) ** 2).sum()
                       for v, b in zip(trainer.trainable_variables, before)))
    np.testing.assert_allclose(step, 0.5, rtol=1e-4)


def _nan_dataset(batch_size=4, nan_batch=3, batches=6):
    x = np.random.default_rng(0).normal(size=(batch_size * batches, 8, 8, 3)).astype(np.float32)
    x[nan_batch * batch_size:(nan_batch + 1) * batch_size] = np.nan
    y = np.arange(len(x)) % 2
    train = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))).batch(batch_size)
    test = tf.data.Dataset.from_tensor_slices((x[:4], y[:4].astype(np.int32))).batch(4)
    return Dataset("nan", train, test, 2, (8, 8, 3), len(x), 4, mean=(0.0,), std=(1.0,))


def test_nan_stops_with_epoch_and_step_and_keeps_good_checkpoints(tmp_path, monkeypatch):
    from bnn_keras.training.run import train

    monkeypatch.setattr(data_lib, "load", lambda *a, **k: _nan_dataset())
    config = TrainConfig(epochs=3, steps_per_epoch=2, batch_size=4, output=str(tmp_path),
                         name="nan", model="reactnet_18")
    monkeypatch.setattr(models, "create", lambda *a, **k: _tiny_bnn())
    # batch 3 (0-based) is NaN: epoch 2, step 2
    with pytest.raises(BnnError, match=r"epoch 2, step 2.*ckpt-1 \(after epoch 1\)"):
        train(config, verbose=0, export=False)
    run = tmp_path / "nan"
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-1")
    assert Path(f"{first_checkpoint_prefix(run)}.index").exists()
    assert (run / "curves.png").stat().st_size > 1000
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    net = _tiny_bnn()
    tf.train.Checkpoint(net=net).read(str(first_checkpoint_prefix(run))).expect_partial()
    assert all(np.all(np.isfinite(v.numpy())) for v in net.weights)


def _tiny_bnn():
    import larq as lq

    inputs = keras.Input((8, 8, 3))
    x = lq.layers.QuantConv2D(4, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip", name="bconv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="classifier")(x))


@pytest.mark.parametrize("key,value", [
    ("init_skip", "conv"), ("epochs", "10"), ("epochs", 2.5), ("epochs", True),
    ("sync_bn", 1), ("learning_rate", "0.1"), ("assistant_epochs", [1, "2"]),
    ("assistants", ["a", 3]), ("model_options", []), ("name", 5), ("seed", None),
])
def test_recipe_value_types_are_checked(key, value, tmp_path):
    recipe = tmp_path / "typed.json"
    recipe.write_text(json.dumps({"config": {key: value}}))
    with pytest.raises(BnnError, match=f"recipe {recipe}: {key} must be"):
        load_recipe(recipe)
    recipe.write_text(json.dumps({"config": {}, "stages": {"1": {key: value}}}))
    with pytest.raises(BnnError, match=f"recipe {recipe}: {key} must be"):
        load_recipe(recipe, 1)


def test_recipe_numbers_may_be_ints_where_floats_are_expected(tmp_path):
    recipe = tmp_path / "ok.json"
    recipe.write_text(json.dumps({"config": {"learning_rate": 1, "init_skip": ["conv"],
                                             "assistant_epochs": [], "sync_bn": False,
                                             "model_options": {"stem": "imagenet"}}}))
    values = load_recipe(recipe)
    assert values["learning_rate"] == 1 and values["init_skip"] == ["conv"]
