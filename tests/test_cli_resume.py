"""Command-line runs that stop and go on: killed, terminated before an epoch, resumed
past broken checkpoints, found again by name, and rerun bit for bit."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from tests.cli_helpers import (
    TINY_ENV,
    TINY_TRAIN,
    assert_one_line_error,
    cli_argv,
    run_main,
    train_tiny,
)


def test_killed_run_resumes_losing_at_most_one_epoch(tmp_path):
    # tiny_reactnet (from $BNN_KERAS_MODELS) with enough steps that an epoch lasts seconds
    args = ["train", "--model", "tiny_reactnet", "--epochs", "3", "--steps-per-epoch", "400",
            "--batch-size", "8", "--image-size", "8", "--output", str(tmp_path), "--name",
            "kill", "--no-export", "--quiet"]
    env = {**os.environ, **TINY_ENV}
    proc = subprocess.Popen(cli_argv(*args), env=env, stdout=subprocess.PIPE,
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

    out = subprocess.run(cli_argv(*args, "--resume"), env=env, capture_output=True, text=True,
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


def _checkpoint_files(run):
    return {p.relative_to(run): p.read_bytes() for p in (run / "checkpoints").rglob("ckpt-*")}


def test_resume_skips_corrupt_checkpoints_and_loses_nothing(capfd, tmp_path):
    code, _, err = train_tiny(capfd, tmp_path, "--epochs", "3", "--name", "c")
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
    code, _, err = train_tiny(capfd, tmp_path, "--name", "c", "--resume")
    assert_one_line_error(code, err, "no checkpoint of")
    assert _checkpoint_files(run) == broken and (run / "history.csv").read_text() == history

    first.write_bytes(good_first)
    code, out, err = train_tiny(capfd, tmp_path, "--name", "c", "--resume")
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
    code, _, err = train_tiny(capsys, tmp_path, "--epochs", "1", "--name", "r")
    assert code == 0, err
    # a run that fails before any epoch, newer than r
    code, _, err = train_tiny(capsys, tmp_path, "--epochs", "1", "--name", "r",
                              "--dataset", f"folder:{tmp_path / 'no-such-folder'}")
    assert_one_line_error(code, err, "does not exist")
    code, out, err = train_tiny(capsys, tmp_path, "--epochs", "2", "--name", "r", "--resume")
    assert code == 0, err
    assert f"resuming {tmp_path / 'r'} after epoch 1" in out
    assert "newest run named r with a checkpoint" in out
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["epochs"] == 2
    # the exact folder, by path
    code, out, err = train_tiny(capsys, tmp_path, "--epochs", "3", "--resume-from", tmp_path / "r")
    assert code == 0, err
    assert f"resuming {tmp_path / 'r'} after epoch 2" in out
    code, _, err = train_tiny(capsys, tmp_path, "--resume-from", tmp_path / "no-run")
    assert_one_line_error(code, err, "no-run")
    code, out, _ = run_main(["train", "--help"], capsys)
    assert "--resume-from" in out


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
    from bnn_keras.keras_files import load_keras_model

    env = {**os.environ, **TINY_ENV}
    procs = [subprocess.Popen(cli_argv("train", *TINY_TRAIN, "--epochs", "1", "--deterministic",
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


def test_sigterm_before_the_first_epoch_leaves_no_run_folder(tmp_path):
    args = ["train", "--model", "tiny_reactnet", "--epochs", "2", "--steps-per-epoch", "2000",
            "--batch-size", "8", "--image-size", "8", "--output", str(tmp_path), "--name",
            "term", "--no-export", "--quiet"]
    proc = subprocess.Popen(cli_argv(*args), env={**os.environ, **TINY_ENV},
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
