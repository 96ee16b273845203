"""tf.distribute: a BN-free model's training does not depend on how batches are split."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = str(Path(__file__).with_name("dist_script.py"))


def _env(**extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def run(mode, variant, out, *flags, env=None):
    proc = subprocess.run([sys.executable, SCRIPT, mode, variant, str(out), *flags],
                          capture_output=True, text=True, timeout=600, env=env or _env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def max_diff(a, b):
    a, b = np.load(a), np.load(b)
    assert a.files == b.files
    return max(float(np.abs(a[k] - b[k]).max()) for k in a.files)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    run("single", "bf", d / "bf.npz")
    run("single", "bn", d / "bn.npz")
    return d


def test_mirrored_two_replicas_equals_one_device_and_agc_once(single, tmp_path):
    run("mirrored", "bf", tmp_path / "m.npz")
    assert max_diff(single / "bf.npz", tmp_path / "m.npz") < 1e-5
    # the weights did move, so equality is not trivial
    run("mirrored", "bf", tmp_path / "wrong.npz", "--agc-per-replica")
    assert max_diff(single / "bf.npz", tmp_path / "wrong.npz") > 1e-3  # AGC per replica differs


def test_bn_without_sync_differs_between_one_and_two_replicas(single, tmp_path):
    run("mirrored", "bn", tmp_path / "bn.npz")
    no_sync = max_diff(single / "bn.npz", tmp_path / "bn.npz")
    assert no_sync > 1e-3
    run("mirrored", "bn", tmp_path / "sbn.npz", "--sync-bn")
    assert max_diff(single / "bn.npz", tmp_path / "sbn.npz") < no_sync


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multiworker_two_processes_equals_one_worker(single, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, SCRIPT, "multiworker", "bf", str(tmp_path / f"w{index}.npz")],
            env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        assert "replicas 2" in out
    assert (tmp_path / "w0.npz").exists() and not (tmp_path / "w1.npz").exists()  # chief only
    assert max_diff(single / "bf.npz", tmp_path / "w0.npz") < 1e-5


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
