"""The command line: bad input gets one line and a non-zero exit (runs that stop and
resume: ``tests/test_cli_resume.py``)."""

import importlib
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
import tf_keras as keras

from bnn_keras import models
from tests.cli_helpers import TINY_ENV, assert_one_line_error, cli_argv, run_main, train_tiny


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
    code, _, err = run_main(["export", str(path), "-o", str(tmp_path / "odd.tflite"),
                             "--trust-code"], capsys)
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
    out = subprocess.run(cli_argv("models", "tiny_*", "--input-shape", "16,16,3"), env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tiny_reactnet" in out.stdout
    env["BNN_KERAS_MODELS"] = "tests.no_such_module"
    out = subprocess.run(cli_argv("models"), env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(
        "error: cannot import model module 'tests.no_such_module'")


def test_help_does_not_import_tensorflow():
    """``--help`` of the command and of every subcommand answers without TensorFlow
    (importing it takes seconds and prints C++ log lines)."""
    code = ("import sys\nfrom bnn_keras.cli import cli\n"
            "for args in ([], *[[c] for c in cli.commands]):\n"
            "    try:\n"
            "        cli([*args, '--help'], prog_name='bnn-keras', standalone_mode=False)\n"
            "    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('tensorflow', 'larq', 'torch') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "BNN_KERAS_MODELS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Usage: bnn-keras import" in out.stdout and "Usage: bnn-keras inspect" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_no_tensorflow_log_line_reaches_the_user():
    """TensorFlow's C++ start-up lines are dropped; BNN_KERAS_DEBUG=1 keeps them."""
    from bnn_keras.cli.tf_logs import TF_LOG_LINE

    env = {k: v for k, v in os.environ.items()
           if k not in ("BNN_KERAS_MODELS", "BNN_KERAS_DEBUG", "TF_CPP_MIN_LOG_LEVEL")}
    lines = {}
    for debug in ("", "1"):
        out = subprocess.run(cli_argv("models", "reactnet_18", "--input-shape", "32,32,3"),
                             env={**env, "BNN_KERAS_DEBUG": debug} if debug else env,
                             capture_output=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert b"reactnet_18" in out.stdout
        lines[debug] = [line for line in (out.stdout + out.stderr).splitlines()
                        if TF_LOG_LINE.match(line)]
    assert lines[""] == [] and lines["1"], lines
    assert TF_LOG_LINE.match(b"2026-12-02 00:39:25.038269: E external/local_xla/xla/"
                             b"stream_executor/cuda/cuda_platform.cc:51] failed call")
    assert not TF_LOG_LINE.match(b"error: LCE cannot convert model 'm': ...")


def test_models_table(capsys):
    code, out, _ = run_main(["models", "reactnet_1*", "birealnet_18", "--input-shape",
                             "32,32,3", "--num-classes", "10"], capsys)
    assert code == 0
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert sorted(rows) == ["birealnet_18", "reactnet_18"]  # reactnet_1* is not reactnet_34
    assert "binary MACs" in out
    code, _, err = run_main(["models", "resnet_9000"], capsys)
    assert code != 0 and "no registered model matches resnet_9000" in err


def test_export_refuses_to_overwrite_its_input(capsys, tmp_path, monkeypatch):
    convert_mod = importlib.import_module("bnn_keras.export.report")  # where export_model converts
    monkeypatch.setattr(convert_mod, "convert_float32", lambda *a, **k: pytest.fail("converted"))
    model = tmp_path / "m.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(model)
    before = model.read_bytes()
    monkeypatch.chdir(tmp_path)
    for args in (["-o", "m.keras"], ["-o", str(tmp_path / "sub" / ".." / "m.keras")],
                 ["--report", "./m.keras"], ["-o", "out.tflite", "--report", "out.tflite"]):
        code, _, err = run_main(["export", "m.keras", *args], capsys)
        assert_one_line_error(code, err, "same file")
        assert model.read_bytes() == before
        assert not (tmp_path / "out.tflite").exists()


def test_export_checks_the_output_is_writable_first(capsys, tmp_path, monkeypatch):
    convert_mod = importlib.import_module("bnn_keras.export.report")  # where export_model converts
    monkeypatch.setattr(convert_mod, "convert_float32", lambda *a, **k: pytest.fail("converted"))
    model = tmp_path / "m.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(model)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    for args, path in ((["-o", blocker / "x.tflite"], blocker / "x.tflite"),
                       (["--report", blocker / "r.json"], blocker / "r.json")):
        code, _, err = run_main(["export", model, *args], capsys)
        assert_one_line_error(code, err, f"cannot write {path}")


@pytest.mark.parametrize("name", ["../evil", "a/b", "/tmp/abs", "", "..", ".", "a\\b"])
def test_run_name_is_one_path_component(name, capsys, tmp_path):
    out = tmp_path / "runs"
    code, _, err = train_tiny(capsys, out, "--name", name, "--epochs", "1")
    assert_one_line_error(code, err, "--name")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_recipe_run_name_is_checked(capsys, tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"config": {"name": "../escape"}}))
    code, _, err = train_tiny(capsys, tmp_path / "runs", "--recipe", recipe, "--epochs", "1")
    assert_one_line_error(code, err, "name")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()


def test_lr_must_be_finite(capsys, tmp_path):
    code, _, err = train_tiny(capsys, tmp_path / "runs", "--lr", "inf", "--epochs", "1")
    assert_one_line_error(code, err, "learning rate must be finite")
    assert not (tmp_path / "runs").exists()


def test_nan_message_says_what_the_run_folder_holds(capsys, tmp_path):
    # one step at a huge rate: the epoch's loss is finite, its validation loss is not
    code, _, err = train_tiny(capsys, tmp_path, "--lr", "1e38", "--steps-per-epoch", "1",
                              "--epochs", "2", "--name", "nan")
    assert_one_line_error(code, err, "NaN/inf in epoch 1")
    run = tmp_path / "nan"
    assert not (run / "checkpoints").exists()
    assert "checkpoints" not in err and "no checkpoint" in err
    assert "config.json" in err  # what the run folder does hold


def test_ctrl_c_says_only_what_the_interrupted_code_knows(capsys, monkeypatch):
    import bnn_keras.training.run as run_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "train", interrupted)
    code, _, err = run_main(["train", "--epochs", "1"], capsys)
    assert code == 130
    assert_one_line_error(code, err, "interrupted")
    assert "--resume" not in err  # no run folder was made: nothing to resume


def test_bench_help_warns_that_proxycommand_runs_locally(capsys):
    code, out, _ = run_main(["bench", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "ProxyCommand" in text and "runs a local command" in text
