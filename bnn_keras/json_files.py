"""Reading the JSON files users hand to bnn-keras (recipes, run configs): one reader, so
every such file fails the same way, in one line naming it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bnn_keras.errors import BnnError, first_line


def read_json_object(path: str | os.PathLike, what: str) -> dict:
    """The JSON object in ``path``; ``what`` names the file in errors ("recipe").

    Raises:
        BnnError: the file cannot be read, is not JSON, is nested too deeply for the
            parser, or holds something else than an object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except OSError as err:
        raise BnnError(f"cannot read {what} {path}: {err.strerror or err}") from None
    except RecursionError:
        raise BnnError(f"{what} {path} is nested too deeply") from None
    except ValueError as err:  # UnicodeDecodeError too
        raise BnnError(f"{what} {path} is not valid JSON: {first_line(err)}") from None
    if not isinstance(data, dict):
        raise BnnError(f"{what} {path} must be a JSON object, got {type(data).__name__}")
    return data
