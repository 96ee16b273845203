"""Recipes: JSON files of :class:`~bnn_keras.training.TrainConfig` values (``zoo/recipes``).

A recipe is a JSON object::

    {
      "description": "what it trains, and the paper's result",
      "reference": "where each value comes from",
      "config": {"model": "reactnet_18", "variant": "bf", "dataset": "cifar10", ...},
      "stages": {"1": {...}, "2": {...}}      # optional: per-stage overrides
    }

``config`` holds any ``TrainConfig`` field; ``stages`` (two-step recipes) holds the values
that differ per stage, selected with ``--stage``. JSON needs no extra dependency on any
supported Python. Precedence: ``TrainConfig`` defaults < recipe < command-line flags.
"""

from __future__ import annotations

from pathlib import Path

from bnn_keras.errors import BnnError
from bnn_keras.json_files import read_json_object
from bnn_keras.training.config import TrainConfig, check_value_types

META_KEYS = ("description", "reference", "paper", "notes", "teacher_note")


def load_recipe(path: str | Path, stage: int | None = None) -> dict:
    """The ``TrainConfig`` values of a recipe (for ``stage`` if it has stages).

    Raises:
        BnnError: unreadable file, unknown keys, a value of the wrong type for its
            ``TrainConfig`` field, or a missing/unknown stage.
    """
    path = Path(path)
    data = read_json_object(path, "recipe")
    unknown = set(data) - {"config", "stages", *META_KEYS}
    if unknown:
        raise BnnError(f"recipe {path}: unknown top-level keys {sorted(unknown)}; use "
                       f"'config', 'stages' and {', '.join(META_KEYS)}")
    values = dict(_section(data.get("config", {}), path, "config"))
    stages = data.get("stages") or {}
    if not isinstance(stages, dict):
        raise BnnError(f"recipe {path}: 'stages' must be an object of stage numbers")
    if stages:
        if stage is None:
            raise BnnError(f"recipe {path} has stages {', '.join(sorted(stages))}: choose one "
                           "with --stage")
        if str(stage) not in stages:
            raise BnnError(f"recipe {path} has no stage {stage}; it has "
                           f"{', '.join(sorted(stages))}")
        values.update(_section(stages[str(stage)], path, f"stage {stage}"))
        values["stage"] = int(stage)
    elif stage is not None:
        values["stage"] = int(stage)
    fields = set(TrainConfig.field_names())
    bad = sorted(set(values) - fields)
    if bad:
        raise BnnError(f"recipe {path}: unknown settings {bad}")
    check_value_types(values, f"recipe {path}")
    values["recipe"] = str(path)
    return values


def _section(section, path: Path, what: str) -> dict:
    if not isinstance(section, dict):
        raise BnnError(f"recipe {path}: '{what}' must be an object of settings")
    return section


def recipe_config(path: str | Path, stage: int | None = None, **overrides) -> TrainConfig:
    """A ``TrainConfig`` from a recipe with ``overrides`` (``None`` values ignored) on top."""
    values = load_recipe(path, stage)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values)
