"""Commands stopped part-way (Ctrl-C, SIGTERM, out of memory, a full temporary folder, a
model module calling ``sys.exit``): one line saying what happened and how to go on, and
nothing half-written left behind."""

import os
import time

import pytest

from bnn_keras.errors import BnnError
from tests.helpers import stopped_run


@pytest.mark.parametrize("error", ["oserror", "tf"])
def test_a_full_temporary_folder_during_the_float_baseline_says_so(error, monkeypatch):
    import errno

    import tensorflow as tf
    import tf_keras as keras

    from bnn_keras import export
    from bnn_keras.bench.float_baseline import float_flatbuffer

    def full(model, directory):
        if error == "oserror":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{directory}/variables/x.data; {os.strerror(errno.ENOSPC)}")

    monkeypatch.setattr(export, "save_inference_graph", full)
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(BnnError, match="the temporary folder .* is full") as info:
        float_flatbuffer(net)
    assert "cannot convert" not in str(info.value)


def test_a_full_temporary_folder_while_writing_the_float_baseline(tmp_path, monkeypatch):
    import importlib

    from bnn_keras.bench import float_baseline
    from tests.full_disk import fill_disk

    bench = importlib.import_module("bnn_keras.cli.bench")  # the module, not the command

    monkeypatch.setattr(bench, "_keras_beside", lambda path, explicit: None)
    monkeypatch.setattr(float_baseline, "float_flatbuffer", lambda model: b"TFL3" * 100)
    fill_disk(monkeypatch, tmp_path)
    with pytest.raises(BnnError, match=f"temporary folder {tmp_path}: it is full"):
        bench._float_baselines(("m.tflite",), None, tmp_path)


def test_ctrl_c_before_the_first_epoch_removes_the_fresh_run(capsys, tmp_path, monkeypatch):
    from bnn_keras.training import run_steps
    from tests.cli_helpers import assert_one_line_error, train_tiny

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_steps, "fit", interrupted)
    code, _, err = train_tiny(capsys, tmp_path / "runs", "--epochs", "1", "--name", "c")
    assert code == 130
    assert_one_line_error(code, err, "interrupted (no epoch had finished, so the run folder "
                                     f"{tmp_path / 'runs' / 'c'} was removed)")
    assert "--resume" not in err and list((tmp_path / "runs").iterdir()) == []


def test_ctrl_c_of_a_run_with_progress_says_how_to_continue(capsys, tmp_path, monkeypatch):
    from tests.cli_helpers import assert_one_line_error, train_tiny

    run, _ = stopped_run(tmp_path, monkeypatch)  # training replaced by pytest.fail ...
    from bnn_keras.training import run_steps

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # ... and then by Ctrl-C while the resume builds

    monkeypatch.setattr(run_steps, "build", interrupted)
    code, _, err = train_tiny(capsys, tmp_path, "--resume-from", run)
    assert_one_line_error(code, err, f"continue the run with `bnn-keras train --resume-from "
                                     f"{run}`")
    assert (run / "config.json").exists()


def test_running_out_of_memory_names_the_batch_size(capsys, tmp_path, monkeypatch):
    import tensorflow as tf

    from bnn_keras.training import run_steps
    from tests.cli_helpers import assert_one_line_error, train_tiny

    def oom(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "Graph execution error:\n\nOOM")

    monkeypatch.setattr(run_steps, "fit", oom)
    code, _, err = train_tiny(capsys, tmp_path / "runs", "--epochs", "1", "--batch-size", "16")
    assert_one_line_error(code, err, "ran out of memory training at batch size 16 (try a "
                                     "smaller --batch-size); no epoch had finished")
    assert list((tmp_path / "runs").iterdir()) == []


def _keras_file(tmp_path):
    import tf_keras as keras

    path = tmp_path / "m.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
    return path


def test_ctrl_c_and_sigterm_during_export_advise_no_training(capsys, tmp_path, monkeypatch):
    import importlib
    import signal

    from tests.cli_helpers import assert_one_line_error, run_main

    report = importlib.import_module("bnn_keras.export.report")
    model = _keras_file(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "convert_float32", interrupted)
    code, _, err = run_main(["export", model], capsys)
    assert code == 130
    assert_one_line_error(code, err, "interrupted")
    assert "train" not in err

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises here
        pytest.fail("SIGTERM was not handled")

    monkeypatch.setattr(report, "convert_float32", terminated)
    code, _, err = run_main(["export", model], capsys)
    assert code == 143
    assert_one_line_error(code, err, "terminated")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # no temporary file
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back for the caller


def test_a_model_module_calling_sys_exit_is_one_line(capsys, tmp_path, monkeypatch):
    from tests.cli_helpers import assert_one_line_error, run_main

    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BNN_KERAS_MODELS", "exits_on_import")
    code, _, err = run_main(["models"], capsys)
    assert_one_line_error(code, err, "model module 'exits_on_import' from $BNN_KERAS_MODELS "
                                     "called sys.exit(3)")
