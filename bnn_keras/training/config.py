"""The resolved configuration of a training run (written to the run folder)."""

from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bnn_keras.data.options import DataOptions
from bnn_keras.errors import BnnError
from bnn_keras.option_checks import shorten
from bnn_keras.training.limits import check_int_limits, check_model_options, shown_json

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("linear", "cosine", "constant", "linear_by_epoch", "cosine_by_epoch")
KD_WEIGHTINGS = ("batch_softmax_ce", "softmax_ce", "uniform")
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
#: training precisions (see :mod:`bnn_keras.training.precision`); ``auto`` is chosen per machine
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
#: ``quantize``: ``none`` trains the float network, ``int8`` its quantization-aware copy
QUANTIZE = ("none", "int8")
MIN_EVAL_BATCH = 256  # the evaluation batch when eval_batch_size is 0 and the batch is smaller
_DATA = DataOptions()  # the data options' defaults


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults train the BN-free ReActNet-18 on digits.

    Optimiser (see :mod:`bnn_keras.training.optim`): ``optimizer`` ``adam`` adds
    ``weight_decay`` / ``kernel_weight_decay`` to the gradient (L2, as ``torch.optim.Adam``
    does), ``adamw`` decays the weights directly (decoupled, ``torch.optim.AdamW``).
    ``kernel_weight_decay`` applies to what the official code holds as 4-D tensors (conv
    kernels, WS gains, learnable biases: :func:`bnn_keras.training.optim.torch_4d_weights`),
    ``weight_decay`` to every other variable. ``schedule``: ``linear`` decay to 0,
    ``cosine`` to ``min_lr`` after ``warmup_epochs`` of linear warm-up from ``warmup_lr``,
    or ``constant``, each changing every step; ``linear_by_epoch`` and ``cosine_by_epoch``
    are the official scripts' schedules, which change once per epoch (see
    :class:`bnn_keras.training.optim.EpochSchedule`). Clipping: ``agc_clip`` (adaptive,
    BN-free BNN) then ``grad_clip_norm`` (global norm, BNext); 0 turns either off.

    ``weight_temperature`` > 0 starts every BNext binary conv at that temperature and
    multiplies it by ``temperature_decay`` every epoch
    (:class:`~bnn_keras.training.callbacks.TemperatureSchedule`).

    ``ste_clip`` > 0 replaces the activation binariser of every binary conv by
    ``ste_sign(clip_value=ste_clip)``; 0 keeps the model's own (``approx_sign``).

    Two-step training: ``stage`` 1 trains binary activations with real-valued weights,
    ``stage`` 2 binarises both and starts from ``init_from`` (a stage-1 run folder or
    ``.keras`` file); ``init_skip`` names layers allowed to keep their fresh initial
    weights. ``stage`` 0 is ordinary single-stage training.

    Distillation: ``teacher`` (a ``.keras`` file, a run folder, ``keras:ResNet50`` or
    ``larq_zoo:QuickNetLarge``) replaces the label loss by the distributional loss;
    ``assistants`` (BNext's consecutive KD) are switched at ``assistant_epochs``.

    Data: the fields of :class:`~bnn_keras.data.options.DataOptions` (``batch_size``,
    ``seed``, ``data_dir``, ``augment``, ``lighting``, ``eval_crop_pct``, ...) are this
    config's too, with its defaults, checked by it; :attr:`data_options` is the object
    the loaders take.

    ``model_options`` go to :func:`bnn_keras.models.create` as keyword arguments (the
    family's architecture options: ``stem``, ``source``, ``binary_pad``, ...).

    Distribution: ``strategy`` is a ``tf.distribute`` strategy name; ``batch_size`` is the
    global batch, split across replicas; ``sync_bn`` averages BatchNorm statistics over
    replicas (``bn`` variants).

    ``eval_batch_size`` is the batch of the evaluations (see :attr:`evaluation_batch`).

    ``precision`` is the Keras dtype policy the network trains under: ``float32`` (the
    default), ``mixed_bfloat16`` or ``mixed_float16`` (loss-scaled), or ``auto``, resolved
    when the run starts (:func:`bnn_keras.training.precision.resolve_precision`) and stored
    resolved. The saved model is float32 whatever the precision.

    ``quantize`` ``int8`` trains the network's quantization-aware copy
    (:func:`bnn_keras.quantize.quantize_model`, made after ``init_from`` loaded its
    weights: from scratch, or fine-tuning a float run), which exports as an int8 + 1-bit
    flatbuffer; ``none`` (the default) trains the float network.

    ``deterministic`` turns on TensorFlow's op determinism for the run (see
    :func:`bnn_keras.training.run.seeded`): with the same ``seed``, machine and versions,
    two runs end with bit-identical weights. ``name`` is the run folder's name under
    ``output``: one path component.
    """

    model: str = "reactnet_18"
    variant: str = "bf"
    #: architecture options for ``models.create`` (e.g. ``{"stem": "imagenet"}``)
    model_options: dict = field(default_factory=dict)
    dataset: str = "digits"
    epochs: int = 6
    batch_size: int = _DATA.batch_size
    eval_batch_size: int = 0  # 0: the training batch, at least 256 (see evaluation_batch)
    learning_rate: float = 2e-3
    agc_clip: float = 0.02
    seed: int = _DATA.seed
    steps_per_epoch: int = 0  # 0: one full pass over the training split
    output: str = "runs"
    name: str = ""
    # data
    # data: the fields of DataOptions, flat in config.json (see data_options)
    data_dir: str = _DATA.data_dir
    manual_dir: str = _DATA.manual_dir
    image_size: int = _DATA.image_size
    augment: str = _DATA.augment
    randaugment_layers: int = _DATA.randaugment_layers
    randaugment_magnitude: float = _DATA.randaugment_magnitude
    randaugment_magnitude_std: float = _DATA.randaugment_magnitude_std
    lighting: float = _DATA.lighting
    eval_crop_pct: float = _DATA.eval_crop_pct
    eval_interpolation: str = _DATA.eval_interpolation
    # optimiser and schedule
    optimizer: str = "adam"
    schedule: str = "linear"
    warmup_epochs: int = 0
    warmup_lr: float = 0.0
    min_lr: float = 0.0
    weight_decay: float = 0.0
    kernel_weight_decay: float = 0.0
    grad_clip_norm: float = 0.0
    # BNext's progressive weight binarisation: 0 keeps the model's temperature
    weight_temperature: float = 0.0
    temperature_decay: float = 1.0
    ste_clip: float = 0.0
    label_smoothing: float = 0.0
    # two-step training
    stage: int = 0
    init_from: str = ""  # a run folder or .keras file to start from (stage 2: required)
    init_skip: list[str] = field(default_factory=list)
    # distillation
    teacher: str = ""
    assistants: list[str] = field(default_factory=list)
    assistant_epochs: list[int] = field(default_factory=list)
    kd_weighting: str = "batch_softmax_ce"
    # distribution (see bnn_keras.training.distribute)
    strategy: str = "default"
    sync_bn: bool = False
    deterministic: bool = False  # TensorFlow op determinism (bit-identical reruns)
    precision: str = "float32"  # Keras dtype policy of the network while it trains
    quantize: str = "none"  # "int8": quantization-aware training of the non-binary part
    recipe: str = ""  # the recipe file the run came from (for the record)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise BnnError(f"epochs must be >= 1, got {self.epochs}")
        self.data_options  # noqa: B018 - made to check the data options
        if not math.isfinite(self.learning_rate):
            raise BnnError(f"learning rate must be finite, got {self.learning_rate}")
        if not self.learning_rate > 0:
            raise BnnError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.agc_clip < 0:
            raise BnnError(f"AGC clip factor must be >= 0 (0 turns AGC off), got {self.agc_clip}")
        if self.eval_batch_size < 0:
            raise BnnError(f"eval batch size must be >= 0 (0: the training batch, at least "
                           f"{MIN_EVAL_BATCH}), got {self.eval_batch_size}")
        if self.steps_per_epoch < 0:
            raise BnnError(f"steps per epoch must be >= 0, got {self.steps_per_epoch}")
        check_int_limits(vars(self))
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("kd_weighting", KD_WEIGHTINGS),
                              ("strategy", STRATEGIES), ("precision", PRECISIONS),
                              ("quantize", QUANTIZE)):
            if getattr(self, name) not in choices:
                raise BnnError(f"{name} must be one of {', '.join(choices)}, "
                               f"got {getattr(self, name)!r}")
        for name in ("warmup_lr", "min_lr", "weight_decay", "kernel_weight_decay",
                     "grad_clip_norm", "ste_clip", "label_smoothing", "warmup_epochs",
                     "weight_temperature", "temperature_decay"):
            if getattr(self, name) < 0 or not math.isfinite(getattr(self, name)):
                raise BnnError(f"{name} must be >= 0 and finite, got {getattr(self, name)}")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs:
            raise BnnError(f"warmup_epochs ({self.warmup_epochs}) must be < epochs "
                           f"({self.epochs})")
        if self.stage not in (0, 1, 2):
            raise BnnError(f"stage must be 0 (single stage), 1 or 2, got {self.stage}")
        if self.stage == 2 and not self.init_from:
            raise BnnError("stage 2 starts from stage 1: give --init-from RUN (the stage-1 run "
                           "folder or its model.keras)")
        if self.assistants and not self.teacher:
            raise BnnError("assistant teachers need a main --teacher")
        if self.assistant_epochs and len(self.assistant_epochs) != len(self.assistants):
            raise BnnError(f"assistant_epochs has {len(self.assistant_epochs)} entries for "
                           f"{len(self.assistants)} assistants")
        if not isinstance(self.model_options, dict) or not all(
                isinstance(k, str) and isinstance(v, (str, int, float, bool))
                for k, v in self.model_options.items()):
            raise BnnError(f"model_options must map option names to strings, numbers or "
                           f"booleans, got {shorten(self.model_options)}")
        self.model_options = check_model_options(self.model_options)
        self.init_skip = list(self.init_skip)
        self.assistants = list(self.assistants)
        self.assistant_epochs = [int(e) for e in self.assistant_epochs]
        if not self.name:
            self.name = default_run_name(self.model, self.variant, self.dataset, self.stage,
                                         self.quantize)
        check_run_name(self.name)

    @property
    def data_options(self) -> DataOptions:
        """This run's data options, the object the loaders take (checked when made)."""
        return DataOptions(**{name: getattr(self, name) for name in DataOptions.names()})

    @property
    def evaluation_batch(self) -> int:
        """Images per batch when the run evaluates (each epoch's validation, the final
        accuracies): ``eval_batch_size``, or when it is 0 the training batch raised to
        :data:`MIN_EVAL_BATCH`. Evaluation keeps a few activations per image where
        training keeps them all, and fewer, larger batches evaluate faster on a CPU; the
        results do not depend on the batch beyond float rounding (inference uses no
        batch statistics)."""
        return self.eval_batch_size or max(self.batch_size, MIN_EVAL_BATCH)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of every field, in order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = set(cls.field_names())
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """The config stored in a run's ``config.json``; anything wrong with it (not
        readable, not a JSON object, a value of the wrong type or out of range) is a
        one-line :class:`BnnError` naming the file."""
        from bnn_keras.training.run_folder import read_run_config

        data = read_run_config(path)
        check_value_types(data, f"run config {path}")
        try:
            return cls.from_dict(data)
        except BnnError as err:
            raise BnnError(f"run config {path}: {err}") from None


def check_run_name(name: str) -> str:
    """``name`` if it is one path component (a folder name under ``output``), else a
    one-line :class:`BnnError`: no separator, no ``.`` or ``..``, not empty."""
    if (not isinstance(name, str) or not name.strip() or name in (".", "..")
            or "/" in name or "\\" in name or "\0" in name):
        raise BnnError(f"run name must be one folder name (no '/', not '.' or '..', not "
                       f"empty), got {name!r}")
    return name


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               dict: "an object", list[str]: "a list of strings",
               list[int]: "a list of integers"}


def _has_type(value, kind) -> bool:
    """``value`` (from JSON) fits a field of type ``kind``; ints are numbers, bools are not."""
    if kind in (list[str], list[int]):
        item = typing.get_args(kind)[0]
        return isinstance(value, list) and all(_has_type(v, item) for v in value)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_value_types(values: dict, where: str) -> None:
    """One-line :class:`BnnError` naming ``where`` and the key for the first value whose
    type is not its :class:`TrainConfig` field's (``init_skip: "conv"`` is not a list)."""
    hints = typing.get_type_hints(TrainConfig)
    for key, value in values.items():
        kind = hints.get(key)
        if kind is not None and not _has_type(value, kind):
            raise BnnError(f"{where}: {key} must be {_TYPE_NAMES.get(kind, kind)}, got "
                           f"{shown_json(value)}")


def default_run_name(model: str, variant: str, dataset: str, stage: int = 0,
                     quantize: str = "none") -> str:
    """``MODEL-VARIANT-DATASET`` (``folder:PATH`` becomes ``folder-<last part>``), with
    ``-stageN`` for two-step runs and ``-int8`` for quantization-aware ones."""
    if dataset.startswith("folder:"):
        dataset = "folder-" + (Path(dataset[len("folder:"):]).name or "images")
    name = f"{model}-{variant}-{dataset}"
    name = f"{name}-stage{stage}" if stage else name
    return f"{name}-{quantize}" if quantize != "none" else name
