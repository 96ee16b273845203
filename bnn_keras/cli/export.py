"""``bnn-keras export``."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import click

from bnn_keras.cli.options import trust_code_option

IO_TYPES = ("float32", "int8", "uint8")  # bnn_keras.export.int8.IO_TYPES, without TensorFlow


def _int8_range(ctx, param, value):
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected MIN,MAX (two numbers), got {value!r}") from None
    if not low < high:
        raise click.BadParameter(f"MIN must be below MAX, got {value!r}")
    return low, high


def _check_distinct(model_path: str, output: str, report_path: str) -> None:
    """One-line error when an output would overwrite the input or the other output."""
    from bnn_keras.errors import BnnError

    seen = {Path(model_path).resolve(): f"the input {model_path}"}
    for flag, path in (("--output", output), ("--report", report_path)):
        other = seen.setdefault(Path(path).resolve(), f"{flag} {path}")
        if other != f"{flag} {path}":
            raise BnnError(f"{flag} {path} is the same file as {other}: choose another path "
                           "(nothing was written)")


def _check_int8_options(quantize: str, calibrate: str | None, int8_range) -> None:
    from bnn_keras.errors import BnnError

    if quantize == "int8" and not calibrate:
        raise BnnError("--quantize int8 needs --calibrate DATASET (images to set the int8 "
                       "ranges), or a model trained with --quantize int8 (no option needed)")
    if calibrate and quantize != "int8":
        raise BnnError("--calibrate goes with --quantize int8")
    if quantize == "int8" and int8_range:
        raise BnnError("--int8-range and --quantize int8 exclude each other: the calibrated "
                       "ranges replace the dummy one")


@click.command()
@trust_code_option
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output .tflite [default: MODEL with .tflite suffix].")
@click.option("--samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="Random inputs on which the flatbuffer is checked against Keras "
                   "(without --dataset).")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.99, show_default=True,
              help="Lowest acceptable top-1 agreement between LCE and Keras.")
@click.option("--dataset", default=None,
              help="Check on this dataset's split: the .tflite accuracy beside the Keras "
                   "accuracy, and the agreement on its images (e.g. digits).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test",
              show_default=True, help="The split --dataset checks on.")
@click.option("--max-samples", type=click.IntRange(min=1), default=None,
              help="Use at most this many images of the split [default: all].")
@click.option("--int8-range", callback=_int8_range, default=None, metavar="MIN,MAX",
              help="LCE's experimental default int8 range (dummy quantization of every "
                   "tensor without a range; for latency studies, accuracy is lost). The "
                   "agreement is reported, not enforced.")
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none",
              show_default=True,
              help="int8: post-training int8 of a float model's non-binary part, its ranges "
                   "calibrated on --calibrate (prints the top-1 it costs). A model trained "
                   "with --quantize int8 exports as int8 without this.")
@click.option("--calibrate", "calibrate", default=None, metavar="DATASET",
              help="With --quantize int8: the dataset whose train images set the ranges "
                   "(e.g. digits); its test split (or --dataset's) measures the cost.")
@click.option("--calibration-batches", type=click.IntRange(min=1), default=8,
              show_default=True, help="Batches of 64 images --calibrate reads.")
@click.option("--input-type", type=click.Choice(IO_TYPES), default="float32",
              show_default=True,
              help="What the .tflite reads: int8 or uint8 (camera frames) need an int8 model.")
@click.option("--output-type", type=click.Choice(IO_TYPES), default="float32",
              show_default=True, help="What the .tflite writes (integer: an int8 model).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="The JSON report [default: OUTPUT with .report.json suffix].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export(model_path, output, samples, min_agreement, dataset, split, max_samples,
           int8_range, quantize, calibrate, calibration_batches, input_type, output_type,
           report_path, as_json) -> None:
    """Convert MODEL_PATH (.keras) to an LCE .tflite flatbuffer, verify it and write a
    JSON report beside it (ops by type, binary-MAC share, size against the ideal size,
    agreement and dataset figures). A quantization-aware model (or --quantize int8
    --calibrate DATASET) gives an int8 + 1-bit flatbuffer.

    Exits with status 1 when a binary conv did not lower to LceBconv2d or the top-1
    agreement with the Keras model is under --min-agreement.
    """
    from bnn_keras.export import LabelledSplit, default_report_path, export_model
    from bnn_keras.files import check_writable
    from bnn_keras.keras_files import load_keras_model

    _check_int8_options(quantize, calibrate, int8_range)
    model = load_keras_model(model_path)
    output = output or str(Path(model_path).with_suffix(".tflite"))
    report_path = report_path or str(default_report_path(output))
    _check_distinct(model_path, output, report_path)
    for path in (output, report_path):  # before the conversion, which can take minutes
        check_writable(path)
    post_training = None
    if quantize == "int8":
        from bnn_keras.quantize.ptq import post_training_int8

        model, post_training = post_training_int8(model, calibrate,
                                                  batches=calibration_batches)
        dataset = dataset or calibrate  # the cost needs a split
    labelled = LabelledSplit.load(dataset, split, max_samples) if dataset else None
    with warnings.catch_warnings():  # export_model's --int8-range warning says it already
        warnings.filterwarnings("ignore", message=".*experimental_default_int8_range",
                                category=UserWarning)
        report = export_model(model, output, labelled, report_path=report_path,
                              int8_range=int8_range, num_samples=samples,
                              min_agreement=min_agreement, input_type=input_type,
                              output_type=output_type, post_training=post_training)
    if report.calibration:
        click.echo(f"warning: {report.calibration.message()}", err=True)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.format())
    if not report.ok:
        click.echo(f"error: export check failed: {'; '.join(report.problems)}", err=True)
        sys.exit(1)
