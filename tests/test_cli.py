"""The command line: bad input gets one line and a non-zero exit; runs resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras import models
from bnn_keras.cli import main


def run_main(args, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, needle):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("args,needle", [
    (["train", "--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["train", "--variant", "xnor"], "no variant 'xnor'"),
    (["train", "--dataset", "mnist-typo"], "unknown dataset"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--lr", "abc"], "--lr"),
    (["train", "--model-option", "rprelu"], "KEY=VALUE"),
    (["train", "--model-option", "rprelu=sideways"], "rprelu must be one of"),
    (["train", "--model-option", "depth=3"], "bad option for model 'reactnet_18'"),
    (["export", "missing.keras"], "not found"),
    (["bench", "missing.tflite"], "not found"),
    (["models", "--input-shape", "32,32"], "H,W,C"),
])
def test_bad_input_one_line(args, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(args, capsys)
    assert_one_line_error(code, err, needle)


def test_corrupt_and_wrong_files(capsys, tmp_path):
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 truncated zip")
    code, _, err = run_main(["export", str(corrupt)], capsys)
    assert_one_line_error(code, err, "corrupt")
    not_model = tmp_path / "notes.tflite"
    not_model.write_text("hello")
    code, _, err = run_main(["bench", str(not_model)], capsys)
    assert_one_line_error(code, err, "not a TFLite model")
    code, _, err = run_main(["export", str(not_model)], capsys)
    assert_one_line_error(code, err, "expected a .keras model file")


@keras.utils.register_keras_serializable(package="tests")
class _Unconvertible(keras.layers.Layer):
    """An op TFLite has no kernel for (and LCE does not enable TF select ops)."""

    def call(self, x):
        return tf.reshape(tf.strings.to_number(tf.strings.as_string(x)), tf.shape(x))


def test_unconvertible_model(capsys, tmp_path):
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Dense(2)(_Unconvertible()(x)))
    path = tmp_path / "odd.keras"
    model.save(path)
    code, _, err = run_main(["export", str(path), "-o", str(tmp_path / "odd.tflite")], capsys)
    assert_one_line_error(code, err, "LCE cannot convert")
    assert not (tmp_path / "odd.tflite").exists()


def test_export_and_bench_commands(capsys, tmp_path):
    from tests.tiny_models import NAME  # registers the two-block reactnet

    path = tmp_path / "r18.keras"
    models.create(NAME, "bf", 10, (16, 16, 3)).save(path)
    code, out, err = run_main(["export", str(path), "-o", str(tmp_path / "r18.tflite"),
                               "--samples", "8"], capsys)
    assert code == 0, err
    assert "LceBconv2d" in out and "lowered to LceBconv2d: yes" in out
    code, out, _ = run_main(["bench", str(tmp_path / "r18.tflite"), "--runs", "3",
                             "--warmup", "1", "--json"], capsys)
    assert code == 0
    figures = json.loads(out)
    assert figures["runs"] == 3
    assert 0 < figures["min_ms"] <= figures["median_ms"] <= figures["max_ms"]


def test_models_from_plugin_module_and_bad_module():
    env = {**os.environ, **TINY_ENV}
    out = subprocess.run(_cli("models", "tiny_*", "--input-shape", "16,16,3"), env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tiny_reactnet" in out.stdout
    env["BNN_KERAS_MODELS"] = "tests.no_such_module"
    out = subprocess.run(_cli("models"), env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(
        "error: cannot import model module 'tests.no_such_module'")


def test_models_table(capsys):
    code, out, _ = run_main(["models", "reactnet_1*", "birealnet_18", "--input-shape",
                             "32,32,3", "--num-classes", "10"], capsys)
    assert code == 0
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert sorted(rows) == ["birealnet_18", "reactnet_18"]  # reactnet_1* is not reactnet_34
    assert "binary MACs" in out
    code, _, err = run_main(["models", "resnet_9000"], capsys)
    assert code != 0 and "no registered model matches resnet_9000" in err


def _cli(*args):
    return [sys.executable, "-m", "bnn_keras", *args]


ROOT = str(Path(__file__).resolve().parents[1])
TINY_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "BNN_KERAS_MODELS": "tests.tiny_models",
            "PYTHONPATH": ROOT}


def test_killed_run_resumes_losing_at_most_one_epoch(tmp_path):
    # tiny_reactnet (from $BNN_KERAS_MODELS) with enough steps that an epoch lasts seconds
    args = ["train", "--model", "tiny_reactnet", "--epochs", "3", "--steps-per-epoch", "400",
            "--batch-size", "8", "--image-size", "8", "--output", str(tmp_path), "--name",
            "kill", "--no-export", "--quiet"]
    env = {**os.environ, **TINY_ENV}
    proc = subprocess.Popen(_cli(*args), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    ckpt_dir = tmp_path / "kill" / "checkpoints"
    deadline = time.time() + 600
    while not list(ckpt_dir.glob("ckpt-1.index")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-epoch 2 (or just after it)
    proc.wait()
    done = sorted(int(p.stem.split("-")[1]) for p in ckpt_dir.glob("ckpt-*.index"))
    assert done and done[-1] < 3
    assert not (tmp_path / "kill" / "metrics.json").exists()

    out = subprocess.run(_cli(*args, "--resume"), env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"after epoch {done[-1]}" in out.stdout
    metrics = json.loads((tmp_path / "kill" / "metrics.json").read_text())
    assert metrics["epochs_this_session"] == 3 - done[-1]
    assert not (tmp_path / "kill-2").exists()  # resumed in place
    history = (tmp_path / "kill" / "history.csv").read_text().splitlines()
    epochs = [int(line.split(",")[0]) for line in history[1:] if line[0].isdigit()]
    assert epochs[-1] == 2 and set(range(3)) <= set(epochs)
    assert np.isfinite(metrics["test_loss"])
    assert Path(tmp_path / "kill" / "model.keras").exists()
