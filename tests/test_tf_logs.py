"""No TensorFlow C++ info or warning line reaches the user's stderr (issue 36, item 9)."""

import os
import subprocess
import sys

import pytest

from bnn_keras.cli.log_filter import TF_LOG_LINE, filter_chunk, is_noise
from tests.cli_helpers import ROOT

XLA = b"I0000 00:00:1796496595.615675   30696 device_compiler.h:188] Compiled cluster using XLA!"
OLD_W = b"2026-12-05 18:50:31.788335: W external/local_xla/xla/service/x.cc:12] slow"
HARMLESS = (b"2026-12-05 22:58:36.505283: E tensorflow/core/framework/node_def_util.cc:680] "
            b"NodeDef mentions attribute use_unbounded_threadpool which is not in the op "
            b"definition: Op<name=MapDataset; ...> Unknown attributes will be ignored.")
ERROR = b"E0000 00:00:1796496631.802373   31291 cuda_dnn.cc:8579] Unable to register cuDNN"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("BNN_KERAS_DEBUG", "TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL")}
    return {**env, "PYTHONPATH": ROOT, **extra}


def test_info_and_warning_lines_are_noise_errors_are_not():
    assert is_noise(XLA) and is_noise(OLD_W)
    assert is_noise(b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR")
    assert TF_LOG_LINE.match(ERROR) and not is_noise(ERROR)
    assert is_noise(HARMLESS)  # what the default run logs with --deterministic
    assert not is_noise(b"F0000 00:00:1.2 7 x.cc:1] Check failed: fatal")
    assert not is_noise(b"error: unknown model 'x'") and not is_noise(b"Warning: a user line")


def test_filter_chunk_holds_only_what_may_become_a_log_line():
    out, rest = filter_chunk(b"", XLA[:20])
    assert (out, rest) == (b"", XLA[:20])  # could still be a log line: held
    out, rest = filter_chunk(rest, XLA[20:] + b"\nkept\n" + ERROR + b"\n 50%|##")
    assert out == b"kept\n" + ERROR + b"\n 50%|##" and rest == b""  # the bar is not held
    out, rest = filter_chunk(b"", b"\r 60%|###")
    assert out == b"\r 60%|###" and rest == b""


def test_the_filter_survives_a_fatal_end():
    """The command dies (abort, as a C++ LOG(FATAL) does): what it wrote last still shows,
    the info line does not."""
    lines = XLA + b"\n" + ERROR + b"\nlast words\n"
    code = ("import os\nfrom bnn_keras.cli.tf_logs import native_log_filter\n"
            f"with native_log_filter():\n    os.write(2, {lines!r})\n    os.abort()\n")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                         timeout=120)
    assert out.returncode != 0
    # (run() reads stderr to its end: the filter's output after its parent died included)
    assert ERROR in out.stderr and b"last words" in out.stderr, out.stderr
    assert b"Compiled cluster" not in out.stderr


@pytest.mark.parametrize("debug", ["", "1"])
def test_train_prints_no_tensorflow_line(tmp_path, debug):
    """One training step of the two-block tiny network in a subprocess: stderr has no C++
    log line (XLA's 'Compiled cluster' is logged after TensorFlow's import);
    BNN_KERAS_DEBUG=1 shows them."""
    env = _env(BNN_KERAS_MODELS="tests.tiny_models", **({"BNN_KERAS_DEBUG": debug}
                                                        if debug else {}))
    args = ["train", "--model", "tiny_reactnet", "--image-size", "8", "--batch-size", "8",
            "--epochs", "1", "--steps-per-epoch", "1", "--no-export",
            "--output", str(tmp_path)]
    out = subprocess.run([sys.executable, "-m", "bnn_keras", *args], env=env,
                         capture_output=True, timeout=600)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert b"test top-1" in out.stdout
    logged = [line for line in out.stderr.splitlines() if TF_LOG_LINE.match(line)]
    if debug:
        assert any(b"Compiled cluster using XLA" in line for line in logged), out.stderr
    else:
        assert logged == [], out.stderr.decode()[-2000:]


def test_help_with_plugins_prints_no_tensorflow_line():
    """Plugin models need TensorFlow even for --help: it is imported quietly too."""
    out = subprocess.run([sys.executable, "-m", "bnn_keras", "eval", "--help"],
                         env=_env(BNN_KERAS_MODELS="tests.tiny_models"), capture_output=True,
                         timeout=300)
    assert out.returncode == 0 and b"Usage: bnn-keras eval" in out.stdout, out.stderr
    assert out.stderr == b"", out.stderr.decode()[-2000:]
