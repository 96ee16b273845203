"""``bnn-keras import``."""

from __future__ import annotations

import json
from pathlib import Path

import click

SOURCES = ("bnn_nobn", "reactnet")


@click.command(name="import")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True,
              help="The .keras file to write.")
@click.option("--model", default=None,
              help="What the checkpoint must hold (e.g. reactnet_a) [default: read from "
                   "its keys].")
@click.option("--variant", default=None, help="Likewise its variant (bn, bf, none).")
@click.option("--num-classes", type=click.IntRange(min=2), default=None,
              help="Checked against the checkpoint's classifier.")
@click.option("--input-size", type=click.IntRange(min=32), default=224, show_default=True,
              help="The square input size the Keras network is built for.")
@click.option("--source", type=click.Choice(SOURCES), default=None,
              help="For a ReActNet-18/34 bn checkpoint, whose keys are the same in both "
                   "repositories: VITA-Group/BNN_NoBN (binary-weight downsample conv) or "
                   "liuzechun/ReActNet (real-valued).")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
def import_command(checkpoint, output, model, variant, num_classes, input_size, source,
                   as_json) -> None:
    """Import an official PyTorch CHECKPOINT (ReActNet, Bi-Real Net, BNext, BNN_NoBN)
    into the same network in Keras, written to OUTPUT (.keras), which export, eval,
    bench and train --init-from take as it is.

    CHECKPOINT is a .pth / .pth.tar as the official training scripts save it (a
    'state_dict' or a bare state dict, DataParallel 'module.' prefixes allowed), read
    with torch.load(weights_only=True): tensors only, never code. Needs PyTorch
    (pip install 'bnn-keras[torch]'); an .npz of the state dict's arrays needs nothing.
    """
    from bnn_keras.errors import BnnError
    from bnn_keras.keras_files import save_keras_atomic
    from bnn_keras.models.torch_import import import_torch

    out = Path(output)
    if out.suffix != ".keras":
        raise click.BadParameter(f"expected a .keras file, got {out.name}", param_hint="-o")
    if out.resolve() == Path(checkpoint).resolve():
        raise BnnError(f"--output {output} is the checkpoint itself")
    net, report = import_torch(checkpoint, model, variant, num_classes=num_classes,
                               input_size=input_size, source=source)
    save_keras_atomic(net, out)
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "output": str(out)}, indent=2))
        return
    click.echo(report.summary())
    click.echo(f"wrote {out} ({net.name}, {input_size}x{input_size}x3 input)")
