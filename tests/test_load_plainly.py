"""The files bnn_keras writes load as the README's "As a library" section says: in a fresh
interpreter, ``import bnn_keras`` and then plain ``tf.keras.models.load_model``."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

from bnn_keras import models
from bnn_keras.keras_files import check_keras_file
from bnn_keras.models.dtypes import float32_model
from bnn_keras.training.precision import precision_policy
from tests.cli_helpers import run_main

#: The README's three lines, then the model's outputs on the inputs beside each file.
_LOAD_AND_PREDICT = """
import bnn_keras  # first: makes tf.keras Keras 2
import tensorflow as tf
import numpy as np, sys
for path in sys.argv[1:]:
    model = tf.keras.models.load_model(path, compile=False)
    x = np.load(path + ".x.npy")
    np.save(path + ".loaded.npy", model(x, training=False).numpy())
"""


def _load_in_fresh_interpreter(paths: list[Path]) -> None:
    done = subprocess.run([sys.executable, "-c", _LOAD_AND_PREDICT, *map(str, paths)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _saved(model: keras.Model, path: Path, x: np.ndarray) -> tuple[Path, np.ndarray]:
    model.save(path)
    check_keras_file(path)  # and passes the check of files from others, unchanged
    np.save(f"{path}.x.npy", x)
    return path, model(x, training=False).numpy()


@pytest.mark.slow
def test_a_file_of_every_builder_module_loads_with_plain_keras(tmp_path, rng):
    """The smallest model of each builder module and a mixed-precision one, each as the
    package saves it, load with the README's lines in a fresh interpreter and give the
    outputs they gave when saved."""
    x = rng.standard_normal((2, 32, 32, 3)).astype(np.float32)
    expected = {}
    for name, variant in (("reactnet_18", "bn"), ("reactnet_a", "bf"),
                          ("birealnet_18", None), ("bnext_tiny", None),
                          ("lqz_quicknet_small", None)):
        path, y = _saved(models.create(name, variant, 10, (32, 32, 3)),
                         tmp_path / f"{name}.keras", x)
        expected[path] = y
        keras.backend.clear_session()
    with precision_policy("mixed_bfloat16"):
        mixed = models.create("reactnet_18", "bf", 10, (32, 32, 3))
    path, y = _saved(float32_model(mixed), tmp_path / "mixed.keras", x)
    expected[path] = y

    _load_in_fresh_interpreter(list(expected))
    for path, y in expected.items():
        np.testing.assert_allclose(np.load(f"{path}.loaded.npy"), y, rtol=1e-4, atol=1e-4,
                                   err_msg=path.name)


_DIGITS_TOP1 = _LOAD_AND_PREDICT.split("for path")[0] + """
from bnn_keras import data
run, seed = sys.argv[1], int(sys.argv[2])
model = tf.keras.models.load_model(run + "/model.keras", compile=False)
right = total = 0
for x, y in data.load("digits", batch_size=64, seed=seed).test:
    right += int(np.sum(np.argmax(model(x, training=False), -1) == np.asarray(y)))
    total += len(y)
print(right / total)
"""


@pytest.mark.slow
def test_the_default_run_loads_and_predicts_its_metrics(tmp_path, capsys):
    """The default ``bnn-keras train`` (cut to two steps), then the README's three lines in
    a fresh interpreter: the loaded model's digits test top-1 is the run's."""
    code, _, err = run_main(["train", "--epochs", "1", "--steps-per-epoch", "2", "--no-export",
                             "--quiet", "--output", str(tmp_path)], capsys)
    assert code == 0, err
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    metrics = json.loads((run / "metrics.json").read_text())
    seed = json.loads((run / "config.json").read_text())["seed"]
    done = subprocess.run([sys.executable, "-c", _DIGITS_TOP1, str(run), str(seed)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.split()[-1]) == pytest.approx(metrics["test_accuracy"], abs=1e-6)
