"""``bnn-keras train --quantize int8`` and ``bnn-keras export`` of int8 models: fine-tuning a
float run, int8 / uint8 input and output, post-training calibration and its cost, and the
one-line errors."""

import json
from pathlib import Path

import numpy as np

from bnn_keras import models
from bnn_keras.export.int8 import io_types
from bnn_keras.keras_files import load_keras_model
from bnn_keras.quantize import is_quantized
from tests.cli_helpers import assert_one_line_error, run_main, train_tiny


def _float_and_int8_runs(capsys, tmp_path):
    code, _, err = train_tiny(capsys, tmp_path, "--epochs", "1", "--name", "float")
    assert code == 0, err
    code, out, err = train_tiny(capsys, tmp_path, "--epochs", "1", "--quantize", "int8",
                                "--init-from", tmp_path / "float", "--lr", "1e-4")
    assert code == 0, err
    return tmp_path / "float" / "model.keras", tmp_path / "tiny_reactnet-bf-digits-int8"


def test_int8_fine_tuning_exports_uint8_in_int8_out(capsys, tmp_path):
    float_model, run = _float_and_int8_runs(capsys, tmp_path)
    config = json.loads((run / "config.json").read_text())
    assert config["quantize"] == "int8" and config["init_from"].endswith("float")
    assert is_quantized(load_keras_model(run / "model.keras"))
    out_file = tmp_path / "q.tflite"
    code, out, err = run_main(["export", run / "model.keras", "-o", out_file, "--input-type",
                               "uint8", "--output-type", "int8", "--min-agreement", "0"],
                              capsys)
    assert code == 0, err
    assert io_types(out_file.read_bytes()) == ("uint8", "int8")
    assert "int8 + 1-bit: uint8 input, int8 output" in out
    report = json.loads((tmp_path / "q.report.json").read_text())
    assert report["size"]["other_param_bytes"] == 1  # the int8 ideal
    checks = {f["check"]: f["ok"] for f in report["findings"]}
    assert checks["int8_kernels"] and checks["int8_sandwiches"] and checks["lowering"]

    # an integer input asked of the float model: one line
    code, _, err = run_main(["export", float_model, "-o", tmp_path / "f.tflite",
                             "--input-type", "int8"], capsys)
    assert_one_line_error(code, err, "int8 input needs an int8 model")
    # a quantization-aware model has nothing left to quantize
    code, _, err = run_main(["export", run / "model.keras", "-o", tmp_path / "g.tflite",
                             "--quantize", "int8", "--calibrate", "digits"], capsys)
    assert_one_line_error(code, err, "nothing to quantize")
    # the calibration images do not fit the 8x8 model
    code, _, err = run_main(["export", float_model, "-o", tmp_path / "h.tflite",
                             "--quantize", "int8", "--calibrate", "digits"], capsys)
    assert_one_line_error(code, err, "has images of shape (32, 32, 3)")
    assert not any(tmp_path.glob("[fgh].tflite"))


def test_int8_options_without_their_partner_are_one_error(capsys, tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"not read")
    for args, needle in ((["--quantize", "int8"], "needs --calibrate DATASET"),
                         (["--calibrate", "digits"], "--calibrate goes with --quantize"),
                         (["--quantize", "int8", "--calibrate", "digits", "--int8-range",
                           "-3,3"], "exclude each other")):
        code, _, err = run_main(["export", model, *args], capsys)
        assert_one_line_error(code, err, needle)


def test_post_training_calibration_prints_its_cost(capsys, tmp_path, monkeypatch):
    from bnn_keras import files
    from tests.tiny_models import NAME

    path = tmp_path / "tiny.keras"
    models.create(NAME, "bf", 10, (32, 32, 3)).save(path)
    written = []  # every JSON file written (atomic_write_json writes through this)
    real_write = files.atomic_write_bytes
    monkeypatch.setattr(files, "atomic_write_bytes",
                        lambda p, data: written.append(Path(p)) or real_write(p, data))
    code, out, err = run_main(["export", path, "--quantize", "int8", "--calibrate", "digits",
                               "--calibration-batches", "1", "--max-samples", "64",
                               "--min-agreement", "0"], capsys)
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning: post-training")]
    assert len(warning) == 1 and "points of test top-1 on 64 images" in warning[0]
    # Python's warning (the +1 padding) is one line too, not file, line and source
    assert all(line.startswith("warning: ") for line in err.splitlines()), err
    assert any("pad with +1" in line for line in err.splitlines()), err
    report = json.loads((tmp_path / "tiny.report.json").read_text())
    cost = report["calibration"]
    assert cost["calibration_images"] == 64 and cost["samples"] == 64
    assert np.isclose(cost["cost"], cost["float_accuracy"] - cost["int8_accuracy"])
    assert cost["int8_accuracy"] == report["split_check"]["tflite_accuracy"]
    assert written == [tmp_path / "tiny.report.json"]  # the one report, written once
    assert "int8_macs" in out


def test_quantize_is_a_config_and_recipe_key(tmp_path, capsys):
    import pytest

    from bnn_keras.errors import BnnError
    from bnn_keras.training.config import TrainConfig, check_value_types

    assert TrainConfig(quantize="int8").name == "reactnet_18-bf-digits-int8"
    assert TrainConfig().quantize == "none"
    with pytest.raises(BnnError, match="quantize must be one of none, int8"):
        TrainConfig(quantize="int4")
    with pytest.raises(BnnError, match="quantize must be a string"):
        check_value_types({"quantize": 8}, "recipe")
    code, _, err = train_tiny(capsys, tmp_path, "--quantize", "int4")
    assert code != 0 and "int4" in err and "Traceback" not in err
