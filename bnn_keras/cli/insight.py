"""``bnn-keras eval``, ``bnn-keras landscape`` and ``bnn-keras inspect``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bnn_keras.cli.options import trust_code_option


@click.command(name="eval")
@trust_code_option
@click.argument("target")
@click.option("--dataset", default=None, help="[default: the run's dataset, else digits]")
@click.option("--split", type=click.Choice(["test", "train"]), default="test",
              show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N images.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def eval_command(target, dataset, split, limit, as_json) -> None:
    """Top-1 and top-5 of a run folder, a .keras model or a .tflite flatbuffer."""
    from bnn_keras.insight.evaluate import class_count_warning, evaluate

    result = evaluate(target, dataset, split, limit)
    warning = class_count_warning(result)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['model']} ({result['format']}) on {result['dataset']}/"
               f"{result['split']}, {result['samples']} images: top-1 {result['top1']:.2%}, "
               f"top-5 {result['top5']:.2%}")


def _odd(ctx, param, value):
    if value % 2 == 0:
        raise click.BadParameter(f"must be odd (the trained weights sit at the grid's centre "
                                 f"point), got {value}; try {value + 1}")
    return value


#: The largest ``--span``: beyond, the perturbed weights are many times the trained ones
#: (the papers' figures use 1) and the losses overflow.
MAX_SPAN = 100.0

#: ``--full``: the grid and subset of Li et al.'s and BNext's landscape figures
FULL_GRID = {"points": 21, "samples": 512}


@click.command()
@trust_code_option
@click.argument("runs", nargs=-1, required=True)
@click.option("--points", type=click.IntRange(min=3), default=9, show_default=True,
              callback=_odd, help="Grid points per axis: odd, so the origin is on the grid.")
@click.option("--span", type=click.FloatRange(min=0, max=MAX_SPAN, min_open=True),
              default=1.0, show_default=True,
              help="The grid covers [-span, span] on both directions (in units of each "
                   "filter's norm).")
@click.option("--samples", type=click.IntRange(min=1), default=128, show_default=True,
              help="Fixed training images the loss is evaluated on.")
@click.option("--full", is_flag=True,
              help=f"The full grid: {FULL_GRID['points']}x{FULL_GRID['points']} points on "
                   f"{FULL_GRID['samples']} images (about 22x the default's work).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--dataset", default=None, help="[default: each run's dataset]")
def landscape(runs, points, span, samples, full, seed, dataset) -> None:
    """2-D loss landscapes around each RUN's weights (PNG contour + surface, .npz grid).

    Files go to RUN/landscape/. All runs share axes and colour scale. A progress bar
    with the time left goes to stderr.
    """
    from bnn_keras.insight.landscape import loss_landscape, write_landscapes

    if full:
        points, samples = FULL_GRID["points"], FULL_GRID["samples"]
    from bnn_keras.data import check_input_shape
    from bnn_keras.insight.sources import load_split
    from bnn_keras.keras_files import load_keras_model

    sources = [_run_source(run, "RUNS") for run in runs]  # all checked before the long work
    grids, out_dirs = {}, {}
    for source in sources:
        model = load_keras_model(source.path)
        name = source.run_dir.name
        ds = dataset or source.dataset or "digits"
        x, y, shape, _ = load_split(ds, "train", samples)
        check_input_shape(model.input_shape[1:], shape, name, ds)
        click.echo(f"{name}: {points}x{points} grid on {len(y)} {ds} images")
        with click.progressbar(length=points * points, label=f"  {name}", show_eta=True,
                               file=sys.stderr) as bar:
            grid = loss_landscape(model, x, y, points=points, span=span, seed=seed,
                                  progress=lambda done, total, bar=bar:
                                  bar.update(done - bar.pos))
        grids[name], out_dirs[name] = grid, source.run_dir / "landscape"
        centre = grid.loss[len(grid.alphas) // 2, len(grid.betas) // 2]
        click.echo(f"  loss at the trained weights {centre:.4f}, grid min "
                   f"{grid.loss.min():.4f}, max {grid.loss.max():.4f}, {grid.seconds:.0f} s")
    for path in write_landscapes(grids, out_dirs):  # every file or none
        click.echo(f"wrote {path}")


def _run_source(run: str, param_hint: str):
    """The run folder ``run`` as a :class:`~bnn_keras.insight.sources.Source`, its model
    file checked (:func:`bnn_keras.keras_files.check_keras_file`)."""
    from bnn_keras.insight.sources import resolve
    from bnn_keras.keras_files import check_keras_file

    source = resolve(run)
    if source.run_dir is None:
        raise click.BadParameter(f"{run} is not a run folder", param_hint=param_hint)
    check_keras_file(source.path)
    return source


@click.command()
@trust_code_option
@click.argument("run")
@click.option("--samples", type=click.IntRange(min=1), default=64, show_default=True,
              help="Images of the batch the activation statistics are measured on.")
def inspect(run, samples) -> None:
    """Per-layer statistics of RUN: latent histograms, near-zero share, sign flips
    between the first and last checkpoint, WS gains, activation std after every block."""
    from bnn_keras.data import check_input_shape
    from bnn_keras.errors import BnnError
    from bnn_keras.insight import inspection as lib
    from bnn_keras.insight.sources import load_split, resolve
    from bnn_keras.keras_files import load_keras_model

    source = resolve(run)
    if source.run_dir is None:
        raise BnnError(f"{run} is not a run folder")
    model = load_keras_model(source.path)
    checkpoints = lib.checkpoint_paths(source.run_dir)
    first = lib.restore_copy(model, checkpoints[0]) if len(checkpoints) > 1 else None
    rows = lib.layer_stats(model, first)
    ds = source.dataset or "digits"
    x, _, shape, _ = load_split(ds, "test", samples)
    check_input_shape(model.input_shape[1:], shape, source.run_dir.name, ds)
    stds = lib.block_activation_std(model, x)
    csv_path, png = lib.write_inspection(model, rows, stds, Path(source.run_dir) / "inspect",
                                         source.run_dir.name)
    if first is None:
        click.echo("note: only one checkpoint, so no sign-flip ratios")
    else:
        click.echo(f"sign flips measured from {Path(checkpoints[0]).name} to the final model")
    for r in rows:
        flips = "-" if r.sign_flip_ratio is None else f"{r.sign_flip_ratio:.3f}"
        gain = "-" if r.gain_mean is None else f"{r.gain_mean:.3f}"
        click.echo(f"{r.layer:<28} near-zero {r.near_zero_share:.3f}  flips {flips}  "
                   f"gain {gain}")
    click.echo("activation std per block: " + " ".join(f"{s:.2f}" for _, s in stds))
    click.echo(f"wrote {png} and {csv_path}")
