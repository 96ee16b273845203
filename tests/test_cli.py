"""The command line: bad input gets one line and a non-zero exit; runs resume."""

import importlib
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
    out = subprocess.run(_cli("models", "tiny_*", "--input-shape", "16,16,3"), env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tiny_reactnet" in out.stdout
    env["BNN_KERAS_MODELS"] = "tests.no_such_module"
    out = subprocess.run(_cli("models"), env=env, capture_output=True, text=True, timeout=300)
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
        out = subprocess.run(_cli("models", "reactnet_18", "--input-shape", "32,32,3"),
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


TINY_TRAIN = ["--model", "tiny_reactnet", "--image-size", "8", "--steps-per-epoch", "2",
              "--batch-size", "8", "--no-export", "--quiet"]


def _train(capsys, output, *args):
    """``bnn-keras train`` of the two-block reactnet in-process: (code, stdout, stderr)."""
    from tests.tiny_models import NAME  # noqa: F401  (registers tiny_reactnet)

    return run_main(["train", *TINY_TRAIN, "--output", output, *args], capsys)


def _checkpoint_files(run):
    return {p.relative_to(run): p.read_bytes() for p in (run / "checkpoints").rglob("ckpt-*")}


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
    code, _, err = _train(capsys, out, "--name", name, "--epochs", "1")
    assert_one_line_error(code, err, "--name")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_recipe_run_name_is_checked(capsys, tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"config": {"name": "../escape"}}))
    code, _, err = _train(capsys, tmp_path / "runs", "--recipe", recipe, "--epochs", "1")
    assert_one_line_error(code, err, "name")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()


def test_lr_must_be_finite(capsys, tmp_path):
    code, _, err = _train(capsys, tmp_path / "runs", "--lr", "inf", "--epochs", "1")
    assert_one_line_error(code, err, "learning rate must be finite")
    assert not (tmp_path / "runs").exists()


def test_nan_message_says_what_the_run_folder_holds(capsys, tmp_path):
    # one step at a huge rate: the epoch's loss is finite, its validation loss is not
    code, _, err = _train(capsys, tmp_path, "--lr", "1e38", "--steps-per-epoch", "1",
                          "--epochs", "2", "--name", "nan")
    assert_one_line_error(code, err, "NaN/inf in epoch 1")
    run = tmp_path / "nan"
    assert not (run / "checkpoints").exists()
    assert "checkpoints" not in err and "no checkpoint" in err
    assert "config.json" in err  # what the run folder does hold


def test_resume_skips_corrupt_checkpoints_and_loses_nothing(capfd, tmp_path):
    code, _, err = _train(capfd, tmp_path, "--epochs", "3", "--name", "c")
    assert code == 0, err
    run, ckpts = tmp_path / "c", tmp_path / "c" / "checkpoints"
    history = (run / "history.csv").read_text()
    data3 = ckpts / "ckpt-3.data-00000-of-00001"
    data3.write_bytes(data3.read_bytes()[:100])  # truncated
    index2 = ckpts / "ckpt-2.index"
    index2.write_bytes(index2.read_bytes()[:-16] + b"\0" * 16)  # damaged (its footer)

    # every checkpoint broken: one line, nothing touched
    first = ckpts / "first" / "ckpt-1.data-00000-of-00001"
    good_first = first.read_bytes()
    first.write_bytes(good_first[:50])
    broken = _checkpoint_files(run)
    code, _, err = _train(capfd, tmp_path, "--name", "c", "--resume")
    assert_one_line_error(code, err, "no checkpoint of")
    assert _checkpoint_files(run) == broken and (run / "history.csv").read_text() == history

    first.write_bytes(good_first)
    code, out, err = _train(capfd, tmp_path, "--name", "c", "--resume")
    assert code == 0, err[-2000:]
    lines = out.splitlines()
    assert any(line.startswith("skipped checkpoint ckpt-3") for line in lines), out
    assert any(line.startswith("skipped checkpoint ckpt-2") for line in lines), out
    assert any("from checkpoints/first/ckpt-1" in line and "after epoch 1" in line
               for line in lines), out
    # no TensorFlow warnings about the failed attempts (C++ logs go to the fd, not sys)
    assert "Read less bytes" not in err and "DATA_LOSS" not in err and "ckpt-" not in err
    # epochs 2 and 3 were trained again: the newer checkpoints were replaced by good ones
    for prefix in ("ckpt-2", "ckpt-3", "first/ckpt-1"):
        reader = tf.train.load_checkpoint(str(ckpts / prefix))
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    epochs = [int(r.split(",")[0]) for r in (run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1, 2]


def test_history_rows_are_replaced_not_dropped(tmp_path):
    from bnn_keras.training.callbacks import HistoryLog

    csv_path = tmp_path / "history.csv"
    csv_path.write_text("epoch,accuracy,loss\n0,0.1,2.0\n1,0.2,1.9\n2,0.3,1.8\n3,0.4,1.7\n")
    log = HistoryLog(csv_path)
    log.on_epoch_end(2, {"loss": 1.5, "accuracy": 0.35})  # a resumed run redoes epoch 3
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "epoch,accuracy,loss"
    assert rows[1:] == ["0,0.1,2.0", "1,0.2,1.9", "2,0.35,1.5", "3,0.4,1.7"]


def test_resume_picks_the_newest_run_with_a_checkpoint(capsys, tmp_path):
    code, _, err = _train(capsys, tmp_path, "--epochs", "1", "--name", "r")
    assert code == 0, err
    # a run that fails before any epoch, newer than r
    code, _, err = _train(capsys, tmp_path, "--epochs", "1", "--name", "r",
                          "--dataset", f"folder:{tmp_path / 'no-such-folder'}")
    assert_one_line_error(code, err, "does not exist")
    code, out, err = _train(capsys, tmp_path, "--epochs", "2", "--name", "r", "--resume")
    assert code == 0, err
    assert f"resuming {tmp_path / 'r'} after epoch 1" in out
    assert "newest run named r with a checkpoint" in out
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["epochs"] == 2
    # the exact folder, by path
    code, out, err = _train(capsys, tmp_path, "--epochs", "3", "--resume-from", tmp_path / "r")
    assert code == 0, err
    assert f"resuming {tmp_path / 'r'} after epoch 2" in out
    code, _, err = _train(capsys, tmp_path, "--resume-from", tmp_path / "no-run")
    assert_one_line_error(code, err, "no-run")
    code, out, _ = run_main(["train", "--help"], capsys)
    assert "--resume-from" in out


def test_ctrl_c_says_only_what_the_interrupted_code_knows(capsys, monkeypatch):
    import bnn_keras.training.run as run_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "train", interrupted)
    code, _, err = run_main(["train", "--epochs", "1"], capsys)
    assert code == 130
    assert_one_line_error(code, err, "interrupted")
    assert "--resume" not in err  # no run folder was made: nothing to resume


def test_deterministic_flag_enables_op_determinism(monkeypatch):
    from tensorflow.python.framework import config as tf_config

    from bnn_keras.training import TrainConfig
    from bnn_keras.training.run import seeded

    assert TrainConfig(deterministic=True).to_dict()["deterministic"] is True
    assert not tf_config.is_op_determinism_enabled()
    with seeded(TrainConfig(deterministic=True)):
        assert tf_config.is_op_determinism_enabled()
    assert not tf_config.is_op_determinism_enabled()  # the process is left as it was
    with seeded(TrainConfig()):
        assert not tf_config.is_op_determinism_enabled()


def test_deterministic_runs_are_bit_identical(tmp_path):
    from bnn_keras.io import load_keras_model

    env = {**os.environ, **TINY_ENV}
    procs = [subprocess.Popen(_cli("train", *TINY_TRAIN, "--epochs", "1", "--deterministic",
                                   "--output", tmp_path / f"out{i}", "--name", "det"),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err.decode()[-2000:]
    runs = [tmp_path / f"out{i}" / "det" for i in range(2)]
    assert all(json.loads((r / "config.json").read_text())["deterministic"] for r in runs)
    a, b = (load_keras_model(r / "model.keras").get_weights() for r in runs)
    assert len(a) == len(b) > 10
    assert max(float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(a, b)) == 0


def test_bench_help_warns_that_proxycommand_runs_locally(capsys):
    code, out, _ = run_main(["bench", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "ProxyCommand" in text and "runs a local command" in text


def test_sigterm_before_the_first_epoch_leaves_no_run_folder(tmp_path):
    args = ["train", "--model", "tiny_reactnet", "--epochs", "2", "--steps-per-epoch", "2000",
            "--batch-size", "8", "--image-size", "8", "--output", str(tmp_path), "--name",
            "term", "--no-export", "--quiet"]
    proc = subprocess.Popen(_cli(*args), env={**os.environ, **TINY_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (tmp_path / "term" / "tensorboard").exists():  # fit has begun
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    assert err.strip().splitlines()[-1] == (
        "error: terminated (no epoch had finished, so the run folder "
        f"{tmp_path / 'term'} was removed)")
    assert list(tmp_path.iterdir()) == []
