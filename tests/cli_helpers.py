"""The command line in tests: run in-process (:func:`run_main`) or as a child process
(:func:`cli_argv` with :data:`TINY_ENV`), the one-line error every bad input must give,
and the tiny training run most CLI tests start from."""

import sys
from pathlib import Path

from bnn_keras.cli import main

#: the repository root, for a child process's PYTHONPATH (it imports ``tests.tiny_models``)
ROOT = str(Path(__file__).resolve().parents[1])
#: a child process's environment that registers the tiny models and quiets TensorFlow
TINY_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "BNN_KERAS_MODELS": "tests.tiny_models",
            "PYTHONPATH": ROOT}
#: ``bnn-keras train`` options for a two-step run of the two-block reactnet
TINY_TRAIN = ["--model", "tiny_reactnet", "--image-size", "8", "--steps-per-epoch", "2",
              "--batch-size", "8", "--no-export", "--quiet"]


def run_main(args, capsys) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err: str, needle: str) -> None:
    """A failed command's stderr is one ``error: ...`` line naming ``needle``."""
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0]
    assert "Traceback" not in err


def cli_argv(*args) -> list[str]:
    """``bnn-keras ARGS`` as a child process's argv (this interpreter)."""
    return [sys.executable, "-m", "bnn_keras", *map(str, args)]


def train_tiny(capsys, output, *args) -> tuple[int, str, str]:
    """``bnn-keras train`` of the two-block reactnet in-process: (code, stdout, stderr)."""
    from tests.tiny_models import NAME  # noqa: F401  (registers tiny_reactnet)

    return run_main(["train", *TINY_TRAIN, "--output", output, *args], capsys)
