"""tf.distribute: a BN-free model's training does not depend on how batches are split."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import ROOT
from tests.helpers import free_port

pytestmark = pytest.mark.xdist_group("distribute")  # its module fixture runs once

SCRIPT = str(Path(__file__).with_name("dist_script.py"))


def _env(**extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def max_diff(a, b):
    a, b = np.load(a), np.load(b)
    assert a.files == b.files
    return max(float(np.abs(a[k] - b[k]).max()) for k in a.files)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every single-device and 2-replica MirroredStrategy job, in one process."""
    d = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, SCRIPT, "mirrored", str(d)], capture_output=True,
                          text=True, timeout=900, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mirrored-bf replicas 2" in proc.stdout and "single-bf replicas 1" in proc.stdout
    return d


def test_mirrored_two_replicas_equals_one_device_and_agc_once(runs):
    assert max_diff(runs / "single-bf.npz", runs / "mirrored-bf.npz") < 1e-5
    # AGC per replica (before the all-reduce) differs, so the equality above is not trivial
    assert max_diff(runs / "single-bf.npz", runs / "mirrored-bf-agc-per-replica.npz") > 1e-3


def test_bn_without_sync_differs_between_one_and_two_replicas(runs):
    no_sync = max_diff(runs / "single-bn.npz", runs / "mirrored-bn.npz")
    assert no_sync > 1e-3
    assert max_diff(runs / "single-bn.npz", runs / "mirrored-bn-sync.npz") < no_sync


def test_multiworker_two_processes_equals_one_worker(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, SCRIPT, "multiworker", str(tmp_path)],
            env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        assert "replicas 2" in out
    # the chief (worker 0) wrote, worker 1 did not
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multiworker-bf-w0.npz",
                                                          "single-bf.npz"]
    assert max_diff(tmp_path / "single-bf.npz", tmp_path / "multiworker-bf-w0.npz") < 1e-5


def test_strategy_names_and_chief_rule(monkeypatch):
    from bnn_keras.errors import BnnError
    from bnn_keras.training.distribute import is_chief, make_strategy

    with pytest.raises(BnnError, match="unknown strategy"):
        make_strategy("horovod")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(BnnError, match="TF_CONFIG"):
        make_strategy("multiworker")
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert not is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert is_chief()


def _cli_workers(tmp_path, *flags):
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    args = [sys.executable, "-m", "bnn_keras", "train", "--strategy", "multiworker",
            "--model", "tiny_reactnet", "--steps-per-epoch", "2", "--batch-size", "8",
            "--image-size", "8",
            "--output", str(tmp_path), "--name", "mw", "--no-export", "--quiet", *flags]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(BNN_KERAS_MODELS="tests.tiny_models", PYTHONPATH=ROOT,
                                       TF_CONFIG=json.dumps(
                                  {"cluster": cluster, "task": {"type": "worker", "index": i}})))
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [out for out, _ in outs]


def test_cli_multiworker_chief_writes_and_restart_resumes(tmp_path):
    _cli_workers(tmp_path, "--epochs", "1")
    run_dir = tmp_path / "mw"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mw"]  # one shared run folder
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["strategy"] == "multiworker"
    assert (run_dir / "checkpoints" / "ckpt-1.index").exists()
    # restarting the cluster continues from the chief's checkpoint (BackupAndRestore-like)
    outs = _cli_workers(tmp_path, "--epochs", "2")
    assert all("after epoch 1" in out for out in outs)
    assert json.loads((run_dir / "metrics.json").read_text())["epochs_this_session"] == 1
    history = (run_dir / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1"]


def test_cli_strategy_errors_are_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bnn_keras", "train", "--strategy", "multiworker",
                          "--output", str(tmp_path)], capture_output=True, text=True,
                         env=_env(), timeout=300)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith("error: --strategy multiworker needs")
    assert "Traceback" not in out.stderr
