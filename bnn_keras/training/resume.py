"""Resuming a run: which run folder, and which of its checkpoints actually loads.

A checkpoint counts only if every tensor it lists can be read back (a truncated or
damaged ``.data`` / ``.index`` file fails that), so a resume never starts from a file
that would fail halfway through. The candidates are tried newest first: the rolling
``checkpoints/ckpt-N`` and then the permanent ``checkpoints/first/ckpt-1``. Nothing is
deleted here; a skipped checkpoint is overwritten only when the resumed run saves that
epoch again.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from bnn_keras.errors import BnnError
from bnn_keras.native_logs import quiet_native_logs
from bnn_keras.training.checkpoints import first_checkpoint_prefix, rolling_checkpoints
from bnn_keras.training.run_folder import CHECKPOINT_DIR, CONFIG_FILE


def checkpoint_candidates(run_dir: str | Path) -> list[Path]:
    """Every checkpoint a resume may start from, newest first (the first-epoch one last)."""
    first = first_checkpoint_prefix(run_dir)
    extra = [first] if Path(f"{first}.index").exists() else []
    return rolling_checkpoints(run_dir) + extra


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether the run folder holds any checkpoint (loadable or not)."""
    return bool(checkpoint_candidates(run_dir))


def run_label(run_dir: Path, prefix: Path) -> str:
    """``checkpoints/ckpt-2`` for messages: the prefix relative to its run folder."""
    return str(prefix.relative_to(run_dir))


def checkpoint_problem(prefix: Path) -> str | None:
    """Why the checkpoint at ``prefix`` cannot be used, or ``None`` when every tensor in
    it reads back."""
    try:
        with quiet_native_logs():
            reader = tf.train.load_checkpoint(str(prefix))
            for key in reader.get_variable_to_shape_map():
                reader.get_tensor(key)
    except Exception as err:  # noqa: BLE001 - any read failure makes it unusable
        return _first_line(err)
    return None


def restore_newest(checkpoint: tf.train.Checkpoint, run_dir: Path,
                   log=print) -> Path | None:
    """Restore ``checkpoint`` from the newest of the run's checkpoints that loads.

    Prints one line per newer checkpoint skipped, with the reason. Returns the prefix
    used, ``None`` when the run has no checkpoint at all; raises a one-line
    :class:`BnnError` (touching nothing) when it has some but none loads.
    """
    candidates = checkpoint_candidates(run_dir)
    skipped = []
    for prefix in candidates:
        problem = checkpoint_problem(prefix)
        if problem is None:
            try:
                with quiet_native_logs():
                    checkpoint.restore(str(prefix)).expect_partial()
            except Exception as err:  # noqa: BLE001 - e.g. it does not match the network
                problem = _first_line(err)
        if problem is None:
            return prefix
        skipped.append(f"{run_label(run_dir, prefix)} ({problem})")
        log(f"skipped checkpoint {prefix.relative_to(run_dir / CHECKPOINT_DIR)}: {problem}",
            flush=True)
    if candidates:
        raise BnnError(f"no checkpoint of {run_dir} loads: {'; '.join(skipped)}; nothing "
                       "was changed (use --resume-from with another run folder, or start a "
                       "new run)")
    return None


def newest_run_with_checkpoint(output: str | Path, name: str) -> Path:
    """The most recently modified run folder ``name`` or ``name-N`` that holds a checkpoint
    (folders of runs that stopped before their first checkpoint are passed over)."""
    root = Path(output)
    entries = list(root.iterdir()) if root.is_dir() else []
    runs = [p for p in entries if is_run_of(p.name, name) and (p / CONFIG_FILE).is_file()]
    with_checkpoint = [p for p in runs if has_checkpoint(p)]
    if not with_checkpoint:
        held = f" ({', '.join(sorted(p.name for p in runs))} have none)" if runs else ""
        raise BnnError(f"nothing to resume: no run folder {root / name}[-N] with a checkpoint"
                       f"{held}; use --resume-from RUN_DIR to restart one in place")
    return max(with_checkpoint, key=_last_change)


def is_run_of(folder_name: str, name: str) -> bool:
    """Whether ``folder_name`` is ``name`` or ``name-N`` (N digits): ``exp12`` is not a run
    of ``exp1``. A plain comparison, so names holding glob characters (``[x]``) match
    themselves only."""
    if folder_name == name:
        return True
    suffix = folder_name[len(name) + 1:]
    return folder_name.startswith(f"{name}-") and suffix.isascii() and suffix.isdigit()


def check_run_folder(run_dir: str | Path) -> Path:
    """``run_dir`` if it is a run folder (it has a config), else a one-line error."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise BnnError(f"{run_dir} is not a run folder (no {CONFIG_FILE})")
    return run_dir


def _last_change(run_dir: Path) -> float:
    """When the run last wrote its config or a checkpoint."""
    files = [run_dir / CONFIG_FILE, *(Path(f"{p}.index") for p in checkpoint_candidates(run_dir))]
    return max(f.stat().st_mtime for f in files if f.exists())


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:200]
