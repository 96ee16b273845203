"""A model file runs no code: every command that loads a ``.keras`` file checks its config
first and refuses, in one line naming the layer, what could run code (bnn_keras.trust)."""

import json
import uuid
import zipfile
from pathlib import Path

import pytest
import tf_keras as keras

from bnn_keras import models
from bnn_keras.errors import BnnError
from bnn_keras.keras_files import load_keras_model
from bnn_keras.trust import check_model_config, trusting_code
from tests.cli_helpers import TINY_TRAIN, assert_one_line_error, run_main


def _lambda(function: dict, constant: str):
    """A Lambda layer calling ``function`` on a constant input: Keras calls it while it
    rebuilds the graph."""

    def craft(config: dict, marker: Path) -> None:
        config["config"]["layers"].append({
            "module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "name": "evil", "config": {
                "name": "evil", "trainable": True, "dtype": "float32", "function": function,
                "function_type": "function", "module": function["module"],
                "output_shape": None, "output_shape_type": "raw", "output_shape_module": None,
                "arguments": {}},
            "inbound_nodes": [[["_CONSTANT_VALUE", -1, constant.format(marker=marker), {}]]]})

    return craft


def _function(module: str, name: str) -> dict:
    return {"module": module, "class_name": "function", "config": name, "registered_name": name}


def _foreign_module(config: dict, marker: Path) -> None:
    """The model's class named in a module that writes the marker when imported (Keras
    imports the module a top-level entry names)."""
    name = f"evil_{uuid.uuid4().hex}"
    (marker.parent / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    config["module"] = name
    config["config"]["name"] = "evil"


def _tf_op(config: dict, marker: Path) -> None:
    config["config"]["layers"].append({
        "module": "tf_keras.src.layers.core.tf_op_layer", "class_name": "TFOpLambda",
        "registered_name": "TFOpLambda", "name": "evil",
        "config": {"name": "evil", "trainable": True, "dtype": "float32",
                   "function": "io.write_file"},
        "inbound_nodes": [[["_CONSTANT_VALUE", -1, str(marker), {"contents": "x"}]]]})


#: Crafted files, each of which ran code (wrote the marker) before files were checked,
#: but the TensorFlow-op one, which is refused as well.
CRAFTS = {
    "os.system": _lambda(_function("os", "system"), "touch {marker}"),
    "subprocess.getoutput": _lambda(_function("subprocess", "getoutput"), "touch {marker}"),
    "builtins.exec": _lambda(_function("builtins", "exec"), "open('{marker}', 'w').close()"),
    "foreign module": _foreign_module,
    "tf.io.write_file": _tf_op,
}


def craft_file(source: Path, target: Path, craft, marker: Path) -> Path:
    """``source`` with its config changed by ``craft``, written to ``target``."""
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(entries["config.json"])
    craft(config, marker)
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return target


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """The two-block reactnet as ``.keras`` and as an LCE ``.tflite``."""
    from bnn_keras.export import convert
    from tests.tiny_models import NAME

    folder = tmp_path_factory.mktemp("tiny")
    model = models.create(NAME, "bf", 10, (8, 8, 3))
    model.save(folder / "tiny.keras")
    (folder / "tiny.tflite").write_bytes(convert(model))
    return folder / "tiny.keras", folder / "tiny.tflite"


def _run_folder(path: Path, model: Path, tflite: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model": "tiny_reactnet", "variant": "bf",
                                                  "dataset": "digits"}))
    (path / "model.keras").write_bytes(model.read_bytes())
    (path / "model.tflite").write_bytes(tflite.read_bytes())
    return path


#: Every command that loads a model file, given the crafted file F, a run folder R
#: holding it and a clean flatbuffer T.
PATHS = {
    "export": lambda f, r, t, out: ["export", f, "-o", out / "x.tflite"],
    "eval file": lambda f, r, t, out: ["eval", f],
    "eval run": lambda f, r, t, out: ["eval", r],
    "train --init-from file": lambda f, r, t, out: ["train", *TINY_TRAIN, "--output", out,
                                                   "--init-from", f],
    "train --init-from run": lambda f, r, t, out: ["train", *TINY_TRAIN, "--output", out,
                                                  "--init-from", r],
    "train --teacher": lambda f, r, t, out: ["train", *TINY_TRAIN, "--output", out,
                                            "--teacher", f],
    "inspect": lambda f, r, t, out: ["inspect", r],
    "landscape": lambda f, r, t, out: ["landscape", r],
    "bench --keras": lambda f, r, t, out: ["bench", t, "--float-baseline", "--keras", f,
                                          "--runs", "1"],
    "bench run --float-baseline": lambda f, r, t, out: ["bench", r / "model.tflite",
                                                       "--float-baseline", "--runs", "1"],
}


@pytest.mark.parametrize("craft", CRAFTS)
@pytest.mark.parametrize("path", PATHS)
def test_no_loading_path_runs_code_from_a_file(path, craft, tiny_files, tmp_path, capsys,
                                               monkeypatch):
    model, tflite = tiny_files
    marker = tmp_path / "marker"
    monkeypatch.syspath_prepend(str(tmp_path))  # where the foreign module lies
    crafted = craft_file(model, tmp_path / "crafted.keras", CRAFTS[craft], marker)
    run = _run_folder(tmp_path / "run", crafted, tflite)
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_main(PATHS[path](crafted, run, tflite, out), capsys)
    assert_one_line_error(code, err, "refusing to load")
    assert "layer 'evil'" in err and "--trust-code" in err
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder either


@keras.utils.register_keras_serializable(package="tests")
class _Own(keras.layers.Layer):
    """A user's own layer: registered, but not by keras, larq or bnn_keras."""

    def call(self, x):
        return x


def test_trust_code_loads_the_users_own_layers(tmp_path, capsys):
    """A layer registered outside bnn_keras (here: by the tests) is refused unless the
    user says they trust the file; then it loads."""
    x = keras.Input((4,))
    path = tmp_path / "own.keras"
    keras.Model(x, keras.layers.Dense(2)(_Own(name="mine")(x))).save(path)
    with pytest.raises(BnnError, match=r"layer 'mine': class _Own names module "
                                       r"'tests\.test_trust', outside keras"):
        load_keras_model(path)
    assert load_keras_model(path, trust_code=True).layers[1].name == "mine"
    with trusting_code():
        assert load_keras_model(path).layers[1].name == "mine"
    code, _, err = run_main(["eval", path, "--limit", "4"], capsys)
    assert_one_line_error(code, err, "refusing to load")
    code, _, err = run_main(["eval", path, "--trust-code", "--limit", "4"], capsys)
    assert "refusing" not in err  # loaded (it fails later: 4 inputs are not digits)


@pytest.mark.parametrize("entry,needle", [
    ({"class_name": "Functional", "module": "tf_keras.src.engine.functional",
      "config": {"name": "m", "layers": [{"class_name": "Dense", "module": "keras.layers",
                                          "config": {"name": "d", "kernel_initializer":
                                                     _function("os", "getcwd")}}]}},
     "layer 'd': function os.getcwd is not a Keras, larq or bnn_keras function"),
    ({"class_name": "Functional", "module": "tf_keras.src.engine.functional",
      "config": {"name": "m", "layers": [{"class_name": "__lambda__",
                                          "config": {"name": "l", "value": "..."}}]}},
     "layer 'l': it holds a pickled Python lambda"),
    ({"class_name": "Functional", "module": "tf_keras.src.engine.functional",
      "config": {"name": "m", "layers": [{"class_name": "QuantConv2D", "module": "os",
                                          "config": {"name": "q"}}]}},
     "layer 'q': class QuantConv2D names module 'os'"),
    ({"class_name": "Functional", "module": "tf_keras.src.engine.functional",
      "config": {"name": "m", "layers": [{"class_name": "os.system", "module": "keras.layers",
                                          "config": {"name": "q"}}]}},
     "layer 'q': class name 'os.system' is not a plain name"),
    ([1, 2], "not a Keras model"),
])
def test_check_refuses_what_could_run_code(entry, needle):
    with pytest.raises(BnnError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        check_model_config(entry)


def test_config_nested_too_deeply_is_one_line(tmp_path):
    path = tmp_path / "deep.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(BnnError, match="nested too deeply"):
        load_keras_model(path)
