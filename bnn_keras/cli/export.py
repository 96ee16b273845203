"""``bnn-keras export``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Output .tflite [default: MODEL with .tflite suffix].")
@click.option("--samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="Random inputs on which the flatbuffer is checked against Keras.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.99, show_default=True,
              help="Lowest acceptable top-1 agreement between LCE and Keras.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export(model_path, output, samples, min_agreement, as_json) -> None:
    """Convert MODEL_PATH (.keras) to an LCE .tflite flatbuffer and verify it.

    Exits with status 1 when a binary conv did not lower to LceBconv2d or the top-1
    agreement with the Keras model is under --min-agreement.
    """
    from bnn_keras.export import export_model
    from bnn_keras.io import load_keras_model

    model = load_keras_model(model_path)
    output = output or str(Path(model_path).with_suffix(".tflite"))
    report = export_model(model, output, num_samples=samples, min_agreement=min_agreement)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.format())
    if not report.ok:
        click.echo(f"error: export check failed: {'; '.join(report.problems)}", err=True)
        sys.exit(1)
