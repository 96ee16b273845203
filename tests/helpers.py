"""Small helpers several test modules share: a free TCP port, the spread of a network's
residual stream, a run folder whose training must not start. TensorFlow is imported on
first use, not with this module."""

import json
import socket

import numpy as np
import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_stds(model, suffixes: str | tuple[str, ...], x: np.ndarray) -> list[float]:
    """The std, on inputs ``x``, of the output of every layer of the Keras ``model`` whose
    name ends with one of ``suffixes`` (a block's output: how far the residual stream
    drifts from unit variance)."""
    import tf_keras as keras

    outs = [lay.output for lay in model.layers if lay.name.endswith(suffixes)]
    return [float(np.std(o)) for o in keras.Model(model.input, outs)(x)]


def stopped_run(tmp_path, monkeypatch, name: str = "h"):
    """A run folder ``tmp_path/name`` with a valid config, and training that fails the
    test if reached: ``(run folder, its TrainConfig)``."""
    from bnn_keras.training import run_steps
    from bnn_keras.training.config import TrainConfig

    run = tmp_path / name
    run.mkdir()
    config = TrainConfig(name=name, output=str(tmp_path))
    (run / "config.json").write_text(json.dumps(config.to_dict()))
    monkeypatch.setattr(run_steps, "build", lambda *a, **k: pytest.fail("trained"))
    return run, config
