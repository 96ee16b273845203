"""``bnn-keras train``: flags, or a recipe (``--recipe FILE``) with any value overridden."""

from __future__ import annotations

import json
import math

import click

from bnn_keras.cli.options import trust_code_option
from bnn_keras.data.base import AUGMENTS, INTERPOLATIONS
from bnn_keras.data.options import DataOptions
from bnn_keras.errors import BnnError
from bnn_keras.training.config import (
    KD_WEIGHTINGS,
    MIN_EVAL_BATCH,
    OPTIMIZERS,
    PRECISIONS,
    QUANTIZE,
    SCHEDULES,
    STRATEGIES,
    TrainConfig,
    check_run_name,
)
from bnn_keras.training.limits import check_model_options

TRAIN_DEFAULTS = TrainConfig()  # a run's defaults, for the flags' help


def default_help(name: str) -> str:
    """``[default: VALUE]`` of the run setting ``name``."""
    return f"[default: {getattr(TRAIN_DEFAULTS, name)}]"


def data_option(name: str, **click_kwargs):
    """The flag ``--NAME`` of the data option ``name``
    (:class:`~bnn_keras.data.options.DataOptions`), its help and default from there."""
    default = getattr(DataOptions(), name)
    shown = f" {default_help(name)}" if default != "" else ""
    return click.option(f"--{name.replace('_', '-')}", name, default=None,
                        help=DataOptions.help(name) + shown, **click_kwargs)


def _csv_list(ctx, param, value):
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _int_list(ctx, param, value):
    items = _csv_list(ctx, param, value)
    if items is None:
        return None
    try:
        return [int(v) for v in items]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def _model_options(ctx, param, value):
    """``KEY=VALUE`` pairs; a VALUE that reads as JSON (1, 0.5, true) is that value."""
    if not value:
        return None
    options = {}
    for item in value:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        options[key.strip()] = _option_value(raw)
    try:
        return check_model_options(options)  # reserved names, NaN and inf refused here
    except BnnError as err:
        raise click.BadParameter(str(err)) from None


def _option_value(raw: str):
    """A number or boolean when ``raw`` reads as one in JSON (``nan`` and ``inf`` read as
    the floats they name, so they are refused rather than kept as text), else ``raw``."""
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        parsed = raw
    if isinstance(parsed, (int, float, bool)):
        return parsed
    try:
        number = float(raw)
    except ValueError:
        return raw
    return raw if math.isfinite(number) else number


def _run_name(ctx, param, value):
    """A run name is one folder name under --output (no path, no '..')."""
    if value is None:
        return None
    try:
        return check_run_name(value)
    except BnnError as err:
        raise click.BadParameter(str(err)) from None


_NONNEG = click.FloatRange(min=0)


@click.command()
@trust_code_option
@click.option("--recipe", type=click.Path(dir_okay=False),
              help="A recipe JSON (zoo/recipes/...); every flag given overrides its value.")
@click.option("--stage", type=click.IntRange(0, 2), default=None,
              help="Two-step training: 1 = binary activations, real weights; 2 = both "
                   "binary, from --init-from. 0 = single stage. [default: 0]")
@click.option("--init-from", "init_from", default=None,
              help="Stage 2: the stage-1 run folder (or a .keras file) to start from.")
@click.option("--init-skip", "init_skip", default=None, callback=_csv_list,
              help="Comma-separated layer-name regexes that may keep fresh weights.")
@click.option("--model", default=None, help=f"Registered model name (see `bnn-keras models`). "
                                            f"{default_help('model')}")
@click.option("--variant", default=None,
              help="bn, bf (BN-free) or none. " + default_help("variant"))
@click.option("--model-option", "model_options", multiple=True, callback=_model_options,
              metavar="KEY=VALUE",
              help="An architecture option of the model (repeatable), e.g. stem=imagenet, "
                   "binary_pad=1, rprelu=branch (see the zoo cards).")
@click.option("--dataset", default=None,
              help="digits, cifar10, cifar100, imagenet2012, imagenette or folder:PATH "
                   f"(PATH/train/<class>/, PATH/val/<class>/). {default_help('dataset')}")
@data_option("data_dir")
@data_option("manual_dir")
@data_option("image_size", type=click.IntRange(min=0))
@data_option("augment", type=click.Choice(AUGMENTS))
@data_option("lighting", type=_NONNEG)
@data_option("eval_crop_pct", type=click.FloatRange(0, 1, min_open=True))
@data_option("eval_interpolation", type=click.Choice(INTERPOLATIONS))
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help=default_help("epochs"))
@data_option("batch_size", type=click.IntRange(min=1))
@click.option("--eval-batch-size", "eval_batch_size", type=click.IntRange(min=0), default=None,
              help="Batch of the validation and final evaluations; 0 is the training batch, "
                   f"at least {MIN_EVAL_BATCH}. {default_help('eval_batch_size')}")
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help=f"Peak learning rate. {default_help('learning_rate')}")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None,
              help=f"adam (L2 weight decay) or adamw (decoupled). {default_help('optimizer')}")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=None,
              help="linear decay to 0, cosine (after warm-up) or constant. "
                   + default_help("schedule"))
@click.option("--warmup-epochs", type=click.IntRange(min=0), default=None,
              help=default_help("warmup_epochs"))
@click.option("--warmup-lr", type=_NONNEG, default=None,
              help=f"Learning rate the warm-up starts from. {default_help('warmup_lr')}")
@click.option("--min-lr", type=_NONNEG, default=None, help=default_help("min_lr"))
@click.option("--weight-decay", type=_NONNEG, default=None,
              help="Weight decay of every variable but conv kernels. "
                   + default_help("weight_decay"))
@click.option("--kernel-weight-decay", type=_NONNEG, default=None,
              help="Weight decay of conv kernels (4-D weights). "
                   + default_help("kernel_weight_decay"))
@click.option("--agc-clip", type=_NONNEG, default=None,
              help="Adaptive gradient clipping factor; 0 turns AGC off. "
                   + default_help("agc_clip"))
@click.option("--grad-clip-norm", type=_NONNEG, default=None,
              help="Clip gradients to this global norm; 0 is off. "
                   + default_help("grad_clip_norm"))
@click.option("--ste-clip", type=_NONNEG, default=None,
              help="Activation binariser ste_sign(clip_value); 0 keeps the model's own.")
@click.option("--label-smoothing", type=click.FloatRange(0, 1), default=None,
              help=default_help("label_smoothing"))
@click.option("--teacher", default=None,
              help="Distil from a teacher: a .keras file, a run folder, keras:NAME or "
                   "larq_zoo:NAME. Replaces the label loss.")
@click.option("--assistants", default=None, callback=_csv_list,
              help="BNext's consecutive KD: comma-separated assistant teachers, switched "
                   "during the run, each used beside --teacher.")
@click.option("--assistant-epochs", default=None, callback=_int_list,
              help="First epoch of each assistant (comma-separated) [default: even split].")
@click.option("--kd-weighting", type=click.Choice(KD_WEIGHTINGS), default=None,
              help=f"Per-sample teacher weighting. {default_help('kd_weighting')}")
@click.option("--strategy", type=click.Choice(STRATEGIES), default=None,
              help="tf.distribute strategy: mirrored (the GPUs of this machine), multiworker "
                   "(machines listed in TF_CONFIG), tpu. --batch-size is the global batch. "
                   f"{default_help('strategy')}")
@click.option("--sync-bn", "sync_bn", is_flag=True, default=None,
              help="Synchronised BatchNorm across replicas (bn variants).")
@click.option("--output", default=None, type=click.Path(file_okay=False),
              help=f"Folder holding run folders. {default_help('output')}")
@click.option("--name", default=None, callback=_run_name,
              help="Run name, one folder name under --output [default: "
                   "MODEL-VARIANT-DATASET].")
@click.option("--steps-per-epoch", type=click.IntRange(min=0), default=None,
              help="Training steps per epoch; 0 is one pass over the training split.")
@data_option("seed", type=click.IntRange(0, 2**32 - 1))
@click.option("--deterministic", is_flag=True, default=None,
              help="TensorFlow op determinism: the same seed gives bit-identical weights "
                   "(on the same machine and versions). TensorFlow then runs input maps "
                   "holding random ops serially; its speed cost on a real dataset is not "
                   "measured.")
@click.option("--precision", metavar=f"[{'|'.join(PRECISIONS)}]", default=None,
              help="Dtype policy while training (the saved model is float32): auto is "
                   "mixed_bfloat16 on a CPU with native bfloat16 and no GPU, else float32; "
                   f"mixed_float16 scales the loss. {default_help('precision')}")
@click.option("--quantize", type=click.Choice(QUANTIZE), default=None,
              help="int8: quantization-aware training of the non-binary part (from scratch, "
                   "or fine-tuning a float run given with --init-from); the export is an "
                   f"int8 + 1-bit flatbuffer. {default_help('quantize')}")
@click.option("--resume", is_flag=True,
              help="Continue the newest run of this name that has a checkpoint, from its "
                   "newest checkpoint that loads (the folder and checkpoint used are "
                   "printed).")
@click.option("--resume-from", "resume_from", type=click.Path(file_okay=False), default=None,
              metavar="RUN_DIR",
              help="Continue this exact run folder (e.g. runs/NAME-2) like --resume; one "
                   "without checkpoints starts again from epoch 1 in place.")
@click.option("--no-export", is_flag=True, help="Skip the LCE export at the end.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(recipe, stage, resume, resume_from, no_export, quiet, **flags) -> None:
    """Train a model and write runs/NAME/ (config, checkpoints, curves, TensorBoard logs,
    .keras, metrics, .tflite)."""
    from bnn_keras import data, models
    from bnn_keras.training.recipes import load_recipe
    from bnn_keras.training.run import train as run_training

    values = load_recipe(recipe, stage) if recipe else {}
    if stage is not None:
        values["stage"] = stage
    if flags.get("model_options") is not None:  # recipe options, overridden key by key
        flags["model_options"] = {**values.get("model_options", {}), **flags["model_options"]}
    values.update({k: v for k, v in flags.items() if v is not None})
    # names and options checked before any TensorFlow work or run folder; nothing built
    model = values.get("model", TRAIN_DEFAULTS.model)
    variant = models.check_variant(model, values.get("variant", TRAIN_DEFAULTS.variant))
    if values.get("model_options"):
        models.check_options(model, variant, values["model_options"])
    data.check_name(values.get("dataset", TRAIN_DEFAULTS.dataset))
    if resume or resume_from:
        config = _resume_config(values)
    else:
        config = TrainConfig.from_dict(values)
    result = run_training(config, resume=resume, resume_from=resume_from,
                          verbose=0 if quiet else 1, export=not no_export)
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


def _resume_config(values: dict) -> TrainConfig:
    """A config that only names the run to resume; the stored config wins (except a larger
    ``--epochs``)."""
    keep = {k: values[k] for k in ("model", "variant", "dataset", "output", "name", "stage",
                                     "strategy", "quantize")
            if k in values}
    keep["stage"] = 0  # only names the run; the stored config (with init_from) wins
    config = TrainConfig.from_dict(keep)
    if not values.get("name"):
        from bnn_keras.training.config import default_run_name

        config.name = default_run_name(config.model, config.variant, config.dataset,
                                       values.get("stage", 0) or 0, config.quantize)
    config.epochs = values.get("epochs") or 0
    return config
