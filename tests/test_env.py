"""bnn_keras makes tf.keras Keras 2, and says what to do when it cannot."""

import os
import subprocess
import sys

import pytest


def _run(code: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(env_extra or {})
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)


def test_import_sets_legacy_keras_before_tensorflow():
    out = _run("import bnn_keras, os, tensorflow as tf, tf_keras;"
               "print(os.environ['TF_USE_LEGACY_KERAS'],"
               " tf.keras.layers.Layer is tf_keras.layers.Layer)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["1", "True"]


@pytest.mark.parametrize("first", ["import tensorflow as tf; tf.keras.layers.Dense",
                                   "import tensorflow"])  # tf.keras not yet resolved
def test_keras3_already_imported_raises_clear_import_error(first):
    out = _run(f"{first}\n"
               "try:\n    import bnn_keras\nexcept ImportError as e:\n    print('IMPORTERROR', e)")
    assert out.returncode == 0, out.stderr
    assert "IMPORTERROR" in out.stdout
    assert "TF_USE_LEGACY_KERAS=1" in out.stdout


def test_tensorflow_first_is_fine_when_the_environment_asks_for_keras_2():
    out = _run("import tensorflow\nimport bnn_keras, larq\nprint('OK')",
               {"TF_USE_LEGACY_KERAS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "OK"


@pytest.mark.xdist_group("suite")
def test_xdist_groups_take_effect(request):
    """The suite's module fixtures rely on ``--dist loadgroup`` keeping a group on one
    worker; with pytest 9.2 and pytest-xdist 3.8 the group silently did not apply
    (pytest-xdist issue 1386) and those fixtures ran once per worker."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not under pytest-xdist's loadgroup")
    assert request.node.nodeid.endswith("@suite")


@pytest.mark.isolated
def test_isolated_tests_run_in_a_spawned_child(tmp_path, capsys):
    """The suite's heaviest tests rely on this to give their memory back (tests/isolated.py):
    the child is a multiprocessing child, not the test worker, and captures what it prints."""
    import multiprocessing

    assert multiprocessing.parent_process() is not None
    print("from the child")
    assert capsys.readouterr().out == "from the child\n"
    assert tmp_path.is_dir()


def test_isolated_child_replaces_itself_as_it_grows(monkeypatch):
    from tests import isolated

    monkeypatch.setattr(isolated, "RECYCLE_MB", 0)  # any child is over the limit
    child = isolated.Child()
    child.run(_nothing, {})
    assert child._pool is None
    child.close()


def _nothing() -> None:
    """A test body for the child to run."""
