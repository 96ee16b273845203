"""``bnn-keras train``."""

from __future__ import annotations

import json

import click

from bnn_keras.training.config import TrainConfig

_D = TrainConfig.__dataclass_fields__


@click.command()
@click.option("--model", default=_D["model"].default, show_default=True,
              help="Registered model name (see `bnn-keras models`).")
@click.option("--variant", default=_D["variant"].default, show_default=True,
              help="bn, bf (BN-free) or none.")
@click.option("--dataset", default=_D["dataset"].default, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help=f"[default: {_D['epochs'].default}]")
@click.option("--batch-size", type=click.IntRange(min=1), default=_D["batch_size"].default,
              show_default=True)
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True),
              default=_D["learning_rate"].default, show_default=True,
              help="Peak learning rate of Adam (decays linearly to 0).")
@click.option("--agc-clip", type=click.FloatRange(min=0), default=_D["agc_clip"].default,
              show_default=True, help="Adaptive gradient clipping factor; 0 turns AGC off.")
@click.option("--output", default=_D["output"].default, show_default=True,
              type=click.Path(file_okay=False), help="Folder holding run folders.")
@click.option("--name", default="", help="Run name [default: MODEL-VARIANT-DATASET].")
@click.option("--steps-per-epoch", type=click.IntRange(min=0), default=0, show_default=True,
              help="Training steps per epoch; 0 is one pass over the training split.")
@click.option("--seed", type=int, default=_D["seed"].default, show_default=True)
@click.option("--resume", is_flag=True,
              help="Continue the latest run of this name from its last checkpoint.")
@click.option("--no-export", is_flag=True, help="Skip the LCE export at the end.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(model, variant, dataset, epochs, batch_size, learning_rate, agc_clip, output, name,
          steps_per_epoch, seed, resume, no_export, quiet) -> None:
    """Train a model and write runs/NAME/ (config, checkpoints, .keras, metrics, .tflite)."""
    from bnn_keras import data, models
    from bnn_keras.training.run import train as run_training

    entry = models.get(model)  # fail fast on bad names, before any TensorFlow work
    if variant not in entry.variants:
        models.create(model, variant)  # raises the one-line error naming the variants
    if dataset not in data.names():
        data.load(dataset)  # likewise
    if resume:
        config = _resume_config(model, variant, dataset, epochs, output, name)
    else:
        config = TrainConfig(model=model, variant=variant, dataset=dataset,
                             epochs=epochs or _D["epochs"].default, batch_size=batch_size,
                             learning_rate=learning_rate, agc_clip=agc_clip, output=output,
                             name=name, seed=seed, steps_per_epoch=steps_per_epoch)
    result = run_training(config, resume=resume, verbose=0 if quiet else 1,
                          export=not no_export)
    m = result.metrics
    click.echo(f"run folder: {result.run_dir}")
    click.echo(f"train top-1 {m['train_accuracy']:.2%}  test top-1 {m['test_accuracy']:.2%}")
    if "export" in m:
        e = m["export"]
        click.echo(f"model.tflite: {e['tflite_bytes'] / 1024:.0f} KiB, binary convs lowered: "
                   f"{e['all_binary_convs_lowered']}, top-1 agreement with Keras on the test "
                   f"split {e['top1_agreement_test_split']:.2%}, tflite test top-1 "
                   f"{e['tflite_test_accuracy']:.2%}")
    click.echo(json.dumps({k: m[k] for k in ("train_accuracy", "test_accuracy")}))


def _resume_config(model, variant, dataset, epochs, output, name) -> TrainConfig:
    """A config that only names the run to resume; the stored config wins."""
    config = TrainConfig(model=model, variant=variant, dataset=dataset, output=output,
                         name=name)
    config.epochs = epochs or 0
    return config
