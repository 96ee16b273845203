"""Our training step from an official step fixture (``tests/data/official_steps`` of a
source checkout), and how far each of our weights ends from the official one: what
``tests/test_official_steps.py`` asserts and ``benchmarks/step_equality.py`` tabulates.

:func:`our_steps` runs in the current Keras float type; the fixtures are float64 (see
``tests/make_step_fixtures.py``), so call it under ``keras.backend.set_floatx("float64")``.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from bnn_keras import models
from bnn_keras.models.torch_import import ImportReport, import_state_dict, layer_tensors
from bnn_keras.models.torch_keys import identify, source_for
from bnn_keras.official_fixtures import MEASURED, STEP_FIXTURES, direction, seeded_tensor
from bnn_keras.training import TrainConfig
from bnn_keras.training.callbacks import TemperatureSchedule
from bnn_keras.training.optim import build_schedule
from bnn_keras.training.recipes import load_recipe
from bnn_keras.training.train_model import build_trainer
from bnn_keras.training.two_step import set_real_weights

#: the step fixtures, by name (``<source>-<model>-<variant>``)
CASES = sorted(p.stem for p in STEP_FIXTURES.glob("*.npz"))
#: the recipes in a source checkout, which the fixtures name
RECIPES = Path(__file__).resolve().parents[2] / "zoo" / "recipes"
TOLERANCE = 1e-5


def load_case(name: str) -> tuple[dict, dict]:
    """A step fixture: its manifest and its arrays."""
    with np.load(STEP_FIXTURES / f"{name}.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("manifest"))), arrays


def _initial_state(manifest: dict) -> dict[str, np.ndarray]:
    """The state dict the official steps started from (BatchNorm at PyTorch's start)."""
    state = {}
    for key, shape in manifest["shapes"]:
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "running_var":
            state[key] = np.ones(shape, np.float32)
        elif leaf in MEASURED:
            state[key] = np.zeros(shape, np.int64 if leaf == "num_batches_tracked"
                                  else np.float32)
        else:
            state[key] = seeded_tensor(key, tuple(shape))
    return state


def _config(meta: dict) -> TrainConfig:
    values = load_recipe(RECIPES / meta["recipe"], meta["stage"] or None)
    if values.get("stage") == 2:
        values["init_from"] = "the official step-1 weights"
    return TrainConfig.from_dict(values)


def _constant(logits: np.ndarray) -> keras.Model:
    """A teacher that answers the fixture's batch with fixed logits."""
    inputs = keras.Input((32, 32, 3))
    out = keras.layers.Lambda(lambda x: tf.zeros((tf.shape(x)[0], 1), x.dtype)
                              + tf.constant(logits, x.dtype))(inputs)
    return keras.Model(inputs, out)


def our_steps(name: str) -> tuple[dict, dict, TrainConfig, keras.Model, list[float]]:
    """Import the fixture's starting weights, train three steps with our trainer from the
    recipe: ``(manifest, arrays, config, net, losses)``."""
    manifest, arrays = load_case(name)
    meta = manifest["meta"]
    config = _config(meta)
    state = _initial_state(manifest)
    identity = identify(state)
    options = dict(config.model_options, stem=identity.stem)
    if meta["model"] in ("reactnet_18", "reactnet_34"):
        options["source"] = meta["source"]
    net = models.create(meta["model"], meta["variant"], meta["num_classes"],
                        (meta["input_size"],) * 2 + (3,), **options)
    if config.stage == 1:
        set_real_weights(net)
    layout = source_for(meta["model"], meta["source"])
    import_state_dict(net, state, layout,
                      ImportReport(meta["model"], meta["variant"], meta["source"], "", 0))
    if config.weight_temperature:
        TemperatureSchedule(net, config.weight_temperature,
                            config.temperature_decay).on_epoch_begin(meta["epoch"])
    teachers = [_constant(t) for t in arrays["teacher_logits"]] if config.teacher else []
    # the steps run at the recipe's learning rate for the fixture's epoch (the schedule
    # itself is compared below)
    epoch_lr = float(build_schedule(config, meta["steps"]).at_epoch(meta["epoch"]))
    trainer = build_trainer(dataclasses.replace(config, schedule="constant",
                                                learning_rate=epoch_lr),
                            net, meta["num_classes"], meta["steps"],
                            teacher=teachers[-1] if teachers else None,
                            assistants=teachers[:-1])
    # three steps run eagerly: tracing the step as a graph took most of a case's time
    # (TensorFlow's graph building through the pure-Python protobuf larq-zoo pins)
    trainer.run_eagerly = True
    losses = [float(trainer.train_on_batch(arrays["inputs"].astype(np.float64),
                                           arrays["labels"], return_dict=True)["loss"])
              for _ in range(meta["steps"])]
    return manifest, arrays, config, net, losses


def weight_errors(manifest: dict, arrays: dict, net: keras.Model, source: str,
                  model: str) -> dict[str, float]:
    """Per weight: relative error of ours against the official tensor after the steps."""
    layout = source_for(model, source)
    rotate = any(type(layer).__name__ == "Rotate180" for layer in net.layers)
    shapes = {k: tuple(s) for k, s in manifest["shapes"]}
    whole = set(manifest["whole"])

    def converted(take_value):
        return layer_tensors(layer, prefixes, rotate,
                             lambda key, *alt: take_value(next(
                                 k for k in (key, *alt) if k in shapes)))

    errors = {}
    for layer in net.layers:
        names = {v.name.split(":")[0].split("/")[-1]: v for v in layer.weights}
        names.pop("temperature", None)
        # in float64 Keras's BatchNorm leaves its fused kernel, whose moving variance is
        # Bessel-corrected as PyTorch's is; the other path keeps the biased one
        # (test_batchnorm_keeps_the_unbiased_variance checks the float32 path)
        names.pop("moving_variance", None)
        if not names:
            continue
        prefixes = layout.prefixes(layer.name)
        expected = converted(lambda k: arrays[f"after/{k}"] if k in whole
                             else np.full(shapes[k], np.nan))
        directions = [converted(lambda k, i=i: direction(k, shapes[k], i) if k not in whole
                                else np.zeros(shapes[k])) for i in range(8)]
        for weight, variable in names.items():
            ours = getattr(variable, "latent_variable", variable).numpy()
            want = expected[weight]
            if not np.isnan(want).any():
                errors[f"{layer.name}/{weight}"] = float(
                    np.linalg.norm(ours - want) / max(np.linalg.norm(want), 1e-12))
                continue
            key = _source_key(layer, prefixes, weight, shapes)
            proj = np.asarray([np.vdot(d[weight], ours) for d in directions])
            diff = np.sqrt(np.mean((proj - arrays[f"proj/{key}"]) ** 2))
            errors[f"{layer.name}/{weight}"] = float(diff / arrays[f"norm/{key}"])
    return errors


#: the state-dict leaf each Keras weight comes from (an RPReLU's: which of its three)
_LEAVES = {"kernel": ("weight", "weights"), "gamma": ("weight",), "beta": ("bias",),
           "moving_mean": ("running_mean",), "moving_variance": ("running_var",),
           "mix": ("scale",), "alpha": ("weight",)}
_RPRELU = {"bias_in": 0, "alpha": 1, "bias_out": 2}


def _source_key(layer, prefixes, weight: str, shapes: dict) -> str:
    """The state-dict key a projected Keras weight came from."""
    if type(layer).__name__ == "RPReLU":
        prefixes = (prefixes[_RPRELU[weight]],)
        weight = "alpha" if weight == "alpha" else "bias"
    for name in _LEAVES.get(weight, (weight,)):
        if f"{prefixes[0]}.{name}" in shapes:
            return f"{prefixes[0]}.{name}"
    raise KeyError(f"{prefixes} {weight}")
