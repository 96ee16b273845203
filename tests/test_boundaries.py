"""The probe's hostile and broken inputs (issue 34): each gets a one-line error or works,
and nothing is lost (no stray run folder, no half-written file)."""

import os
import time
from pathlib import Path

import pytest

from bnn_keras.errors import BnnError


def _fake_run(root: Path, name: str, age: float) -> Path:
    """A run folder with a config and a (never read) rolling checkpoint, ``age`` s old."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    for path in (run / "config.json", run / "checkpoints" / "ckpt-1.index"):
        path.write_text("{}")
        os.utime(path, (time.time() - age, time.time() - age))
    return run


def test_resume_matches_name_or_name_dash_number_only(tmp_path):
    from bnn_keras.training.resume import newest_run_with_checkpoint

    exp1 = _fake_run(tmp_path, "exp1", age=100)
    _fake_run(tmp_path, "exp12", age=10)  # newer, but another run's name
    _fake_run(tmp_path, "exp1-x", age=5)
    assert newest_run_with_checkpoint(tmp_path, "exp1") == exp1
    exp1_2 = _fake_run(tmp_path, "exp1-2", age=1)
    assert newest_run_with_checkpoint(tmp_path, "exp1") == exp1_2


def test_resume_finds_names_with_glob_characters(tmp_path):
    from bnn_keras.training.resume import newest_run_with_checkpoint

    run = _fake_run(tmp_path, "[x]", age=1)
    _fake_run(tmp_path, "x", age=0)  # what the glob [x]* would have matched
    assert newest_run_with_checkpoint(tmp_path, "[x]") == run
    with pytest.raises(BnnError, match="nothing to resume"):
        newest_run_with_checkpoint(tmp_path / "missing", "[x]")


def test_a_fresh_run_never_shares_a_folder(tmp_path, monkeypatch):
    from bnn_keras.training import run as run_mod
    from bnn_keras.training import run_steps
    from bnn_keras.training.config import TrainConfig

    other = tmp_path / "r"  # made by a run launched at the same instant, after we looked
    other.mkdir()
    (other / "config.json").write_text('{"theirs": true}')
    monkeypatch.setattr(run_mod, "next_run_dir", lambda output, name: Path(output) / name)
    seen = []

    def stop(config, strategy, folder, **kwargs):
        seen.append(folder.path)
        raise BnnError("stopped before training")

    monkeypatch.setattr(run_steps, "build", stop)
    with pytest.raises(BnnError, match="stopped"):
        run_mod.train(TrainConfig(name="r", output=str(tmp_path)))
    assert seen == [tmp_path / "r-2"]
    assert (other / "config.json").read_text() == '{"theirs": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # ours removed, theirs kept


def test_claim_run_dir_takes_the_next_free_name(tmp_path):
    from bnn_keras.training.run_folder import claim_run_dir

    assert claim_run_dir(tmp_path / "out", "a") == tmp_path / "out" / "a"
    assert claim_run_dir(tmp_path / "out", "a") == tmp_path / "out" / "a-2"
    assert claim_run_dir(tmp_path / "out", "a") == tmp_path / "out" / "a-3"


def test_bench_plot_on_a_full_disk_keeps_the_earlier_plot(tmp_path, monkeypatch):
    from bnn_keras.bench.table import BenchRow, plot_latency_accuracy
    from tests.full_disk import fill_disk

    rows = [BenchRow("runs/a/model.tflite", "local", "interpreter", 1, 5, 2.0, 1.5, 2.5, 0.1,
                     accuracy=0.9)]
    plot = tmp_path / "plots" / "latency.png"
    assert plot_latency_accuracy(rows, plot) == 1
    before = plot.read_bytes()
    assert before.startswith(b"\x89PNG")
    fill_disk(monkeypatch, tmp_path / "plots")
    with pytest.raises(BnnError, match=f"{plot}: No space left on device"):
        plot_latency_accuracy(rows, plot)
    assert plot.read_bytes() == before
    assert [p.name for p in plot.parent.iterdir()] == ["latency.png"]
