"""The probe's hostile and broken inputs (issue 34): each gets a one-line error or works,
and nothing is lost (no stray run folder, no half-written file)."""

import json
import os
import time
from pathlib import Path

import pytest

from bnn_keras.errors import BnnError
from tests.helpers import stopped_run


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


def test_resume_checks_history_before_training(tmp_path, monkeypatch):
    from bnn_keras.training.run import train

    run, config = stopped_run(tmp_path, monkeypatch)
    history = run / "history.csv"
    history.write_bytes(b"epoch,loss\n0,1.5\n1,\xff\xfe\n")
    with pytest.raises(BnnError, match=f"cannot read {history}: .*codec can't decode"):
        train(config, resume_from=run)
    assert history.read_bytes() == b"epoch,loss\n0,1.5\n1,\xff\xfe\n"


BAD_CONFIGS = [pytest.param(text, needle, id=name) for name, text, needle in [
    ("list", b"[1, 2]", "must be a JSON object"),
    ("dataset-int", b'{"dataset": 5}', "dataset must be"),
    ("epochs-str", b'{"epochs": "x"}', "epochs must be an integer"),
    ("epochs-neg", b'{"epochs": -3}', "epochs must be >= 1"),
    ("not-utf8", b"\xff\xfe{}", "not valid JSON"),
    ("deep", b"[" * 100000, "not valid JSON|nested too deeply")]]


@pytest.mark.parametrize("text,needle", BAD_CONFIGS)
def test_resume_from_a_bad_run_config_names_it(text, needle, tmp_path, monkeypatch):
    from bnn_keras.training.run import train

    run, config = stopped_run(tmp_path, monkeypatch)
    (run / "config.json").write_bytes(text)
    with pytest.raises(BnnError, match=f"run config {run / 'config.json'}.*({needle})"):
        train(config, resume_from=run)


@pytest.mark.parametrize("command", ["eval", "landscape", "inspect"])
@pytest.mark.parametrize("text,needle", BAD_CONFIGS[:2])
def test_insight_commands_name_a_bad_run_config(command, text, needle, tmp_path, capsys):
    from tests.cli_helpers import assert_one_line_error, run_main

    run = tmp_path / "r"
    run.mkdir()
    (run / "model.keras").write_bytes(b"never read")
    (run / "config.json").write_bytes(text)
    code, _, err = run_main([command, run], capsys)
    assert_one_line_error(code, err, f"run config {run / 'config.json'}")
    assert needle in err


def test_train_on_a_folder_with_a_corrupt_image_leaves_no_run(tmp_path, capsys):
    from tests.cli_helpers import assert_one_line_error, train_tiny
    from tests.image_files import corrupt_middle, write_folder

    root = write_folder(tmp_path / "pets")
    corrupt_middle(root / "train" / "dog" / "0.jpg")
    code, _, err = train_tiny(capsys, tmp_path / "runs", "--dataset", f"folder:{root}",
                              "--epochs", "1", "--name", "pets")
    assert_one_line_error(code, err, f"{root / 'train' / 'dog' / '0.jpg'} (does not decode)")
    assert list((tmp_path / "runs").iterdir()) == []


def test_saving_a_model_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    import tf_keras as keras

    from bnn_keras.keras_files import save_keras_atomic
    from tests.full_disk import fill_disk

    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = save_keras_atomic(net, tmp_path / "run" / "model.keras")
    before = path.read_bytes()
    fill_disk(monkeypatch, tmp_path / "run")
    with pytest.raises(BnnError, match=f"cannot write {path}: No space left on device"):
        save_keras_atomic(net, path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["model.keras"]


HUGE = str(10**23)


@pytest.mark.parametrize("args,needle", [
    (["--seed", "-1"], "--seed"), (["--seed", "100000000000000000000"], "--seed"),
    (["--batch-size", "100000"], "batch_size must be from 1 to 65536"),
    (["--batch-size", "9223372036854775807"], "batch_size must be from 1 to 65536"),
    (["--epochs", HUGE], "epochs must be from 1 to 100000"),
    (["--steps-per-epoch", HUGE], "steps_per_epoch must be from 0"),
    (["--image-size", HUGE], "image_size must be from 0 to 4096"),
    (["--model-option", "alpha=nan"], "must be a finite number"),
    (["--model-option", "alpha=NaN"], "must be a finite number"),
    (["--model-option", "alpha=-inf"], "must be a finite number"),
    (["--model-option", f"alpha=1{'0' * 400}"], "must be a finite number"),
    (["--model-option", "name=x"], "'name' is not an architecture option"),
    (["--model-option", "num_classes=3"], "'num_classes' is not an architecture option"),
    (["--model-option", "input_shape=[1]"], "'input_shape' is not an architecture option"),
    (["--model-option", "variant=bn"], "'variant' is not an architecture option"),
    (["--teacher", "keras:__name__"], "unknown teacher 'keras:__name__'"),
    (["--teacher", "larq_zoo:__doc__"], "unknown teacher"),
    (["--batch-size", "2000"], "larger than the training split of digits (1437 images)"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_train_refuses_out_of_range_input_and_leaves_no_folder(args, needle, capsys, tmp_path):
    from tests.cli_helpers import assert_one_line_error, train_tiny

    code, _, err = train_tiny(capsys, tmp_path / "runs", "--epochs", "1", *args)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


@pytest.mark.parametrize("config,needle", [
    ({"batch_size": 10**23}, "batch_size must be from 1 to 65536"),
    ({"seed": -1}, "seed must be from 0 to 4294967295"),
    ({"model_options": {"num_classes": 3}}, "'num_classes' is not an architecture option"),
    ({"model_options": {"alpha": 10**400}}, "alpha must be a finite number, got a huge"),
    ({"assistants": ["a.keras"], "teacher": "t.keras", "assistant_epochs": [10**23]},
     "assistant_epochs[0] must be from 0 to"),
])
def test_recipe_values_out_of_range(config, needle, tmp_path):
    from bnn_keras.training.recipes import recipe_config

    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"config": config}))
    with pytest.raises(BnnError) as info:
        recipe_config(recipe)
    assert needle in str(info.value) and len(str(info.value)) < 300


def test_deeply_nested_recipe(tmp_path):
    from bnn_keras.training.recipes import load_recipe

    recipe = tmp_path / "deep.json"
    recipe.write_text('{"config": {"model_options": ' + "[" * 100000 + "]" * 100000 + "}}")
    with pytest.raises(BnnError, match=f"recipe {recipe} is nested too deeply"):
        load_recipe(recipe)


def test_an_option_that_overflows_the_builder_is_a_bad_option():
    from bnn_keras import models

    with pytest.raises(BnnError, match="bad option for model 'reactnet_18': .*range"):
        models.create("reactnet_18", "bf", 10, (32, 32, 3), alpha=1e308)


def test_bench_threads_are_bounded_with_their_own_message(capsys, tmp_path):
    from tests.cli_helpers import assert_one_line_error, run_main

    code, _, err = run_main(["bench", tmp_path / "m.tflite", "--threads", "1,2147483648"],
                            capsys)
    assert_one_line_error(code, err, "thread counts must be at most 1024, got 2147483648")
