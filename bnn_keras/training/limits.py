"""The limits of a run's settings: integer ranges and model options (see
:class:`bnn_keras.training.config.TrainConfig`). A value outside is a one-line
:class:`~bnn_keras.errors.BnnError`, not an overflow deep in TensorFlow or NumPy."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

from bnn_keras.data.options import MAX_BATCH
from bnn_keras.errors import BnnError
from bnn_keras.option_checks import check_range, shorten

#: the range of each integer setting but the data options' (those are
#: :data:`bnn_keras.data.options.DATA_INT_LIMITS`): a value outside is a one-line error,
#: not an overflow deep in TensorFlow or NumPy
INT_LIMITS = {"epochs": (1, 100_000), "eval_batch_size": (0, MAX_BATCH),
              "steps_per_epoch": (0, 10**9), "warmup_epochs": (0, 100_000)}


def check_int_limits(settings: Mapping[str, object]) -> None:
    """A one-line :class:`BnnError` for the first integer setting of a run's
    ``settings`` outside its :data:`INT_LIMITS` (the assistants' first epochs: within
    the run's epochs)."""
    assistants = settings["assistant_epochs"]
    limits = {**INT_LIMITS, **{f"assistant_epochs[{i}]": (0, settings["epochs"])
                               for i in range(len(assistants))}}
    values = {name: settings[name] for name in INT_LIMITS}
    values.update({f"assistant_epochs[{i}]": e for i, e in enumerate(assistants)})
    for name, value in values.items():
        check_range(name, value, *limits[name])


def check_batch_fits(batch_size: int, dataset: str, train_size: int) -> None:
    """A one-line :class:`BnnError` when the batch is larger than the training split."""
    if batch_size > train_size:
        raise BnnError(f"the batch size {batch_size} is larger than the training split "
                       f"of {dataset} ({train_size} images): pick at most {train_size}")


#: :func:`bnn_keras.models.create`'s own arguments, which no model option may set
RESERVED_MODEL_OPTIONS = ("name", "variant", "num_classes", "input_shape")


def check_model_options(options: dict) -> dict:
    """``options`` (architecture options for :func:`bnn_keras.models.create`) if none
    sets one of its own arguments (:data:`RESERVED_MODEL_OPTIONS`) and every number is
    finite (an integer within float range); else a one-line :class:`BnnError`."""
    for key, value in options.items():
        if key in RESERVED_MODEL_OPTIONS:
            raise BnnError(f"model option {key!r} is not an architecture option: the model "
                           "is chosen with --model and --variant, its classes and input "
                           "shape come from the dataset")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and not abs(value) <= sys.float_info.max:  # NaN, inf, a 10**400 int
            raise BnnError(f"model option {key} must be a finite number, got "
                           f"{shorten(value)}")
    return dict(options)


def shown_json(value, limit: int = 100) -> str:
    """``value`` (from JSON) as JSON for a message, cut to ``limit`` characters."""
    try:
        text = json.dumps(value)
    except ValueError:  # an integer of over 4300 digits
        return "a huge integer"
    return text if len(text) <= limit else text[:limit] + "..."


