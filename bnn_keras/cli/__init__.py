"""The ``bnn-keras`` command: train, import, export, bench, models, eval, landscape, inspect."""

from __future__ import annotations

import os

import click

import bnn_keras
from bnn_keras._env import PLUGINS_ENV
from bnn_keras.cli.bench import bench
from bnn_keras.cli.errors import run_cli
from bnn_keras.cli.export import export
from bnn_keras.cli.import_ import import_command
from bnn_keras.cli.insight import eval_command, inspect, landscape
from bnn_keras.cli.models import models
from bnn_keras.cli.tf_logs import import_tensorflow_quietly, native_log_filter
from bnn_keras.cli.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(bnn_keras.__version__, prog_name="bnn-keras")
def cli() -> None:
    """Train binary neural networks, export them with LCE and benchmark them.

    Models of your own: name the modules that register them in $BNN_KERAS_MODELS.
    """
    if os.environ.get(PLUGINS_ENV):  # the registry imports TensorFlow: only when needed
        import_tensorflow_quietly()  # `--help` skipped it, but the plugins need it
        from bnn_keras.models.registry import load_plugins

        load_plugins()


for command in (train, import_command, export, bench, models, eval_command, landscape,
                inspect):
    cli.add_command(command)


def main(args: list[str] | None = None) -> None:
    """Console-script entry point (TensorFlow's C++ info and warning lines dropped)."""
    with native_log_filter():
        run_cli(cli, args)
