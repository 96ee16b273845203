"""One options object per job: the data options from the command line to ``tf.data``, a
run's precision resolved once, model names and options checked without building."""

import dataclasses
import json

import pytest

from bnn_keras import data, models
from bnn_keras.data.options import DataOptions
from bnn_keras.errors import BnnError
from bnn_keras.training.config import TrainConfig
from tests.cli_helpers import assert_one_line_error, run_main


def test_data_options_are_the_configs_data_fields():
    """TrainConfig holds DataOptions' fields under the same names and defaults (so its
    flat config.json still loads) and hands the loaders one object built from them."""
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(DataOptions):
        assert train_fields[f.name].default == f.default, f.name
        assert train_fields[f.name].type == f.type, f.name
    config = TrainConfig(batch_size=32, augment="randaugment", lighting=0.1, seed=5)
    options = config.data_options
    assert options == DataOptions(batch_size=32, augment="randaugment", lighting=0.1, seed=5)
    assert options.randaugment == (2, 7.0, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 1


@pytest.mark.parametrize("values,needle", [
    ({"augmnt": "none"}, "unknown data option 'augmnt' (did you mean augment?); data options: "
                         "batch_size, seed,"),
    ({"batchsize": 8}, "did you mean batch_size?"),
    ({"zzz": 1}, "unknown data option 'zzz'; data options: batch_size"),
    ({"augment": "mixup"}, "augment must be one of default, randaugment, none, got 'mixup'"),
    ({"batch_size": 10**6}, "batch_size must be from 1 to 65536"),
    ({"eval_crop_pct": 0}, "eval_crop_pct must be in (0, 1]"),
    ({"lighting": float("nan")}, "lighting must be >= 0 and finite"),
])
def test_a_bad_data_option_is_one_line(values, needle):
    with pytest.raises(BnnError) as info:
        data.load("digits", **values)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_the_config_checks_its_data_options_with_the_same_messages():
    with pytest.raises(BnnError, match="augment must be one of"):
        TrainConfig(augment="mixup")
    with pytest.raises(BnnError, match=r"image_size must be from 0 to 4096"):
        TrainConfig(image_size=-1)


def test_check_name_loads_nothing():
    data.check_name("digits")
    data.check_name("folder:/nowhere")  # a folder is checked when loaded
    with pytest.raises(BnnError, match="unknown dataset 'mnist'; known datasets: digits"):
        data.check_name("mnist")


@pytest.mark.parametrize("args,needle", [
    (["train", "--augmnt", "none"], "No such option '--augmnt'. Did you mean '--augment'?"),
    (["train", "--batchsize", "8"], "No such option '--batchsize'"),
    (["export", "m.keras", "--reprot", "r.json"], "No such option '--reprot'"),
    (["bench", "m.tflite", "--thread", "1"], "No such option '--thread'"),
    (["models", "--nonsense"], "No such option '--nonsense'"),
    (["eval", "--nonsense"], "No such option '--nonsense'"),
    (["inspect", "--nonsense"], "No such option '--nonsense'"),
    (["landscape", "--nonsense"], "No such option '--nonsense'"),
    (["import", "--nonsense"], "No such option '--nonsense'"),
    (["trian"], "No such command 'trian'"),
])
def test_a_misspelled_flag_is_one_line(args, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(args, capsys)
    assert_one_line_error(code, err, needle)
    assert "Usage:" not in err + out
    assert not list(tmp_path.iterdir())


def test_an_unknown_recipe_key_is_one_line(capsys, tmp_path):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"config": {"augmnt": "none"}}))
    code, _, err = run_main(["train", "--recipe", recipe, "--output", tmp_path / "runs"],
                            capsys)
    assert_one_line_error(code, err, "unknown settings ['augmnt']")
    assert code == 1 and not (tmp_path / "runs").exists()


@pytest.fixture()
def unbuildable(monkeypatch):
    """reactnet_18's builder replaced by one that fails the test when called."""
    from bnn_keras.models import registry

    def builder(**kwargs):
        pytest.fail("a network was built")

    entry = registry.get("reactnet_18")
    monkeypatch.setitem(registry._REGISTRY, "reactnet_18",
                        dataclasses.replace(entry, builder=builder))


@pytest.mark.parametrize("args,needle", [
    (["--model-option", "nonsense=1"],
     "bad option for model 'reactnet_18': unknown nonsense; its options: stem"),
    (["--model-option", "alpha=big"], "alpha must be a float, got 'big'"),
    (["--variant", "xnor"], "model 'reactnet_18' has no variant 'xnor'; choose from bf, bn, none"),
])
def test_train_refuses_model_options_without_building(args, needle, unbuildable, capsys,
                                                      tmp_path):
    code, _, err = run_main(["train", "--model", "reactnet_18", *args, "--output",
                             tmp_path / "runs"], capsys)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "runs").exists()


def test_check_variant_builds_nothing(unbuildable):
    assert models.check_variant("reactnet_18", None) == "bf"
    assert models.check_variant("reactnet_18", "bn") == "bn"
    with pytest.raises(BnnError, match="no variant 'xnor'"):
        models.check_variant("reactnet_18", "xnor")
    with pytest.raises(BnnError, match="unknown model 'resnet9000'"):
        models.check_variant("resnet9000", "bf")


@pytest.fixture()
def registered(monkeypatch):
    """Register builders for one test only: yields ``register(name, builder)``."""
    from bnn_keras.models import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    def register(name, builder):
        return models.register(name, variants=("bf",), family="test")(builder)

    return register


def test_keyword_builders_get_an_options_object(registered):
    """A builder registered without an options class: its keyword options are checked
    by name and type from its signature before it runs; its own errors are its own."""
    calls = []

    def builder(variant, num_classes, input_shape, depth: int = 2, act: str = "relu"):
        calls.append((variant, depth, act))
        raise ValueError("the builder's own error")

    registered("kw_net", builder)
    options = models.get("kw_net").options
    assert [f.name for f in dataclasses.fields(options)] == ["depth", "act"]
    with pytest.raises(BnnError, match="bad option for model 'kw_net': unknown width; its "
                                       "options: depth, act"):
        models.create("kw_net", "bf", 10, (32, 32, 3), width=3)
    with pytest.raises(BnnError, match="depth must be a int, got 'deep'"):
        models.check_options("kw_net", "bf", {"depth": "deep"})
    assert calls == []
    with pytest.raises(ValueError, match="the builder's own error"):  # not a BnnError
        models.create("kw_net", "bf", 10, (32, 32, 3), depth=4)
    assert calls == [("bf", 4, "relu")]


def test_a_builder_whose_options_cannot_be_checked_is_refused(registered):
    def takes_anything(variant, num_classes, input_shape, **kwargs):
        raise AssertionError("never called")

    def needs_depth(variant, num_classes, input_shape, depth):
        raise AssertionError("never called")

    for name, builder in (("any_net", takes_anything), ("depth_net", needs_depth)):
        with pytest.raises(ValueError, match=f"model '{name}': builder parameter .* needs a "
                                             "default"):
            registered(name, builder)
        assert name not in models.names()


def test_a_builders_own_error_is_not_turned_into_a_bad_option(registered):
    from bnn_keras.models.reactnet_resnet import ReActNetResNetOptions

    def broken(variant, num_classes, input_shape, options):
        raise TypeError("a bug in the builder")

    models.register("broken_net", variants=("bf",), family="test",
                    options=ReActNetResNetOptions)(broken)
    with pytest.raises(TypeError, match="a bug in the builder"):
        models.create("broken_net", "bf", 10, (32, 32, 3))


def test_training_leaves_the_callers_config_as_it_was(tmp_path, monkeypatch):
    """The run resolves ``auto`` once into its own config, stores it resolved, and the
    config it was given is unchanged."""
    from bnn_keras.training import precision
    from bnn_keras.training.run import train
    from tests.tiny_models import NAME

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    config = TrainConfig(model=NAME, image_size=8, steps_per_epoch=1, batch_size=8, epochs=1,
                         precision="auto", output=str(tmp_path), name="same")
    before = dataclasses.replace(config)
    result = train(config, verbose=0, export=False)
    assert config == before and config.precision == "auto"
    stored = json.loads((result.run_dir / "config.json").read_text())
    assert stored["precision"] == "float32"


def test_export_makes_the_float32_copy_once(tmp_path, monkeypatch):
    """A mixed-precision network's float32 copy is made once per export, by
    export_model, and the conversion takes it as it is."""
    import importlib

    from bnn_keras.export import export_model
    from bnn_keras.export import report as report_mod
    from bnn_keras.models import dtypes
    from bnn_keras.training.precision import precision_policy
    from tests.tiny_models import NAME

    calls = []

    def counted(model):
        calls.append(dtypes.is_mixed(model))
        return dtypes.float32_model(model)

    monkeypatch.setattr(report_mod, "float32_model", counted)
    convert_mod = importlib.import_module("bnn_keras.export.convert")  # not the function
    monkeypatch.setattr(convert_mod, "float32_model", counted)
    with precision_policy("mixed_bfloat16"):
        net = models.create(NAME, "bf", 4, (16, 16, 3))
    report = export_model(net, tmp_path / "m.tflite")
    assert calls == [True]
    assert report.all_lowered and report.agreement.top1_agreement >= 0.99
