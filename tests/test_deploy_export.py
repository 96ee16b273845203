"""`bnn-keras export`: the JSON report, the dataset-split check and --int8-range."""

import json

import pytest

from tests.cli_helpers import run_main

pytestmark = pytest.mark.xdist_group("deploy_export")  # its module fixture runs once



@pytest.fixture(scope="module")
def small_keras(tmp_path_factory):
    """A small larq net on digits' input shape (32, 32, 3), 10 classes, briefly fitted."""
    import larq as lq
    import tf_keras as keras

    from bnn_keras import data

    x_train, y_train, _, _ = data.digits_arrays()
    x = keras.Input((32, 32, 3))
    y = keras.layers.Conv2D(16, 3, strides=2, padding="same")(x)
    y = keras.layers.BatchNormalization()(y)
    for _ in range(2):
        y = lq.layers.QuantConv2D(16, 3, padding="same", pad_values=1.0,
                                  input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                  kernel_constraint="weight_clip", use_bias=False)(y)
        y = keras.layers.BatchNormalization()(y)
    y = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(y))
    model = keras.Model(x, y)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train[:512], y_train[:512], epochs=2, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("export") / "small.keras"
    model.save(path)
    return path


def test_report_beside_the_tflite_with_dataset_check(small_keras, tmp_path, capsys):
    out_path = tmp_path / "deploy" / "small.tflite"
    code, out, err = run_main(["export", small_keras, "-o", out_path, "--dataset", "digits",
                               "--max-samples", "96"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "deploy" / "small.report.json").read_text())
    assert report["ops"]["LceBconv2d"] == 2 and report["all_lowered"]
    assert report["ops_total"] == sum(report["ops"].values())
    assert 0.5 < report["binary_mac_share"] < 1 and report["binary_macs"] > 0
    size = report["size"]
    assert size["binary_params"] == 2 * 3 * 3 * 16 * 16 and size["other_param_bytes"] == 4
    assert size["ideal_bytes"] == size["binary_params"] / 8 + 4 * size["other_params"]
    assert report["size_over_ideal"] == pytest.approx(out_path.stat().st_size
                                                      / size["ideal_bytes"])
    check = report["split_check"]
    assert check["dataset"] == "digits" and check["split"] == "test" and check["samples"] == 96
    assert check["top1_agreement"] >= 0.99
    assert abs(check["tflite_accuracy"] - check["keras_accuracy"]) <= 0.02
    assert report["agreement"]["samples"] == 96 and report["agreement_enforced"]
    assert "binary MACs:" in out and "x the ideal" in out and "tflite accuracy" in out
    assert "small.report.json" in out


def test_int8_range_warns_and_does_not_enforce_agreement(small_keras, tmp_path, capsys):
    out_path = tmp_path / "int8.tflite"
    report_path = tmp_path / "reports" / "int8.json"
    code, out, err = run_main(["export", small_keras, "-o", out_path, "--int8-range", "-3,3",
                               "--samples", "8", "--report", report_path, "--json"], capsys)
    assert code == 0, err
    assert err.startswith("warning: --int8-range") and "latency studies only" in err
    printed = json.loads(out)
    report = json.loads(report_path.read_text())
    assert printed == report
    assert report["int8_range"] == [-3.0, 3.0] and not report["agreement_enforced"]
    assert report["size"]["other_param_bytes"] == 1
    assert report["ops"]["LceBconv2d"] == 2


@pytest.mark.parametrize("args,needle", [
    (["--int8-range", "3,-3"], "--int8-range"),
    (["--int8-range", "abc"], "MIN,MAX"),
    (["--dataset", "nope"], "unknown dataset 'nope'"),
])
def test_bad_export_options(args, needle, small_keras, tmp_path, capsys):
    code, _, err = run_main(["export", small_keras, "-o", tmp_path / "m.tflite", *args], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err


def test_local_bench_with_float_baseline(small_keras, tmp_path, capsys):
    """Local: LCE interpreter beside the float baseline (XNNPACK); the accuracy comes from
    the export's dataset check."""
    tflite = tmp_path / "small.tflite"
    code, _, err = run_main(["export", small_keras, "-o", tflite, "--dataset", "digits",
                             "--max-samples", "32"], capsys)
    assert code == 0, err
    code, out, err = run_main(["bench", tflite, "--float-baseline", "--keras", small_keras,
                               "--runs", "3", "--warmup", "1", "--json"], capsys)
    assert code == 0, err
    row = json.loads(out)  # one measurement: one object, as before
    assert row["model"] == str(tflite) and row["runs"] == 3 and row["target"] == "local"
    assert 0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"]
    assert row["float_avg_ms"] > 0 and row["speedup"] == row["float_avg_ms"] / row["avg_ms"]
    assert row["size_ratio"] > 1  # float32 weights against 1-bit ones
    report = json.loads((tmp_path / "small.report.json").read_text())
    assert row["accuracy"] == report["split_check"]["tflite_accuracy"]
    code, out, err = run_main(["bench", tflite, "--float-baseline", "--runs", "2"], capsys)
    assert code == 1 and "needs the Keras model" in err and "--keras" in err


def test_a_run_and_export_write_the_same_report(tmp_path, capsys, monkeypatch):
    """A training run's export and `bnn-keras export` are one function: the same report
    file name and content, from one conversion and one write of the flatbuffer, which
    is never read back (the file is spoiled right after it is written)."""
    import importlib

    from bnn_keras import data, models
    from bnn_keras.export import default_report_path
    from bnn_keras.training.run_folder import RunFolder
    from bnn_keras.training.run_steps import export_run
    from tests.tiny_models import NAME

    report_mod = importlib.import_module("bnn_keras.export.report")
    calls = {"convert": 0, "write": 0}

    def convert(*args, **kwargs):
        calls["convert"] += 1
        return real_convert(*args, **kwargs)

    def write_and_spoil(path, content):
        calls["write"] += 1
        written = real_write(path, content)
        written.write_bytes(b"spoiled")
        return written

    real_convert, real_write = report_mod.convert_float32, report_mod.atomic_write_bytes
    monkeypatch.setattr(report_mod, "convert_float32", convert)
    monkeypatch.setattr(report_mod, "atomic_write_bytes", write_and_spoil)

    net = models.create(NAME, "bf", 10, (32, 32, 3))
    net.save(tmp_path / "model.keras")
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    metrics = export_run(net, data.load("digits"), folder)
    assert calls == {"convert": 1, "write": 1}
    cli_tflite = tmp_path / "cli" / "model.tflite"
    code, _, err = run_main(["export", tmp_path / "model.keras", "-o", cli_tflite,
                             "--dataset", "digits"], capsys)
    assert code == 0, err
    assert calls == {"convert": 2, "write": 2}

    assert folder.export_report == default_report_path(folder.tflite)
    ran = json.loads(folder.export_report.read_text())
    exported = json.loads(default_report_path(cli_tflite).read_text())
    assert ran.pop("path") == str(folder.tflite) and exported.pop("path") == str(cli_tflite)
    assert ran == exported
    check = ran["split_check"]
    assert check["dataset"] == "digits" and check["split"] == "test"
    assert check["samples"] == ran["agreement"]["samples"] == len(data.digits_arrays()[3])
    assert metrics["tflite_test_accuracy"] == check["tflite_accuracy"]
    assert metrics["top1_agreement_test_split"] == ran["agreement"]["top1_agreement"]
    assert metrics["tflite_bytes"] == ran["size_bytes"]
    assert metrics["max_abs_diff"] == ran["agreement"]["max_abs_diff"]
