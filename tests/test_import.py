"""``bnn-keras import``: official checkpoints in, ``.keras`` out, bad checkpoints refused."""

import sys

import numpy as np
import pytest

from bnn_keras.errors import BnnError
from bnn_keras.models import import_torch, read_checkpoint
from bnn_keras.official_fixtures import load_fixture
from tests.cli_helpers import assert_one_line_error, run_main

#: 32x32 inputs and 10 classes: what digits gives, so eval runs on it
CASE = "bnn_nobn-reactnet_a-bf"


@pytest.fixture(scope="module")
def state():
    return load_fixture(CASE).state_dict()


def _npz(path, state):
    np.savez(path, **state)
    return path


@pytest.mark.isolated
def test_pth_import_export_eval(tmp_path, capsys, state):
    """A real .pth as the official scripts save it (DataParallel prefixes, extra entries)
    through import, export and eval on the command line."""
    torch = pytest.importorskip("torch")
    checkpoint = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 255, "best_top1_acc": torch.tensor(61.5),
                "state_dict": {f"module.{k}": torch.from_numpy(v) for k, v in state.items()}},
               checkpoint)
    out = tmp_path / "imported.keras"
    code, stdout, err = run_main(["import", checkpoint, "-o", out, "--input-size", "32"], capsys)
    assert code == 0, err
    assert "VITA-Group/BNN_NoBN checkpoint: reactnet_a bf, 10 classes" in stdout

    fixture = load_fixture(CASE)
    from bnn_keras.keras_files import load_keras_model

    got = load_keras_model(out).predict(fixture.inputs, verbose=0)
    assert np.linalg.norm(got - fixture.logits) / np.linalg.norm(fixture.logits) < 1e-3

    code, stdout, err = run_main(["export", out, "--samples", "4"], capsys)
    assert code == 0, err
    assert "LceBconv2d: yes (31 LceBconv2d for 31 binary convs)" in stdout.replace(
        "binary convs lowered to ", "")
    for model in (out, out.with_suffix(".tflite")):
        code, stdout, err = run_main(["eval", model, "--dataset", "digits", "--limit", "16"],
                                     capsys)
        assert code == 0, err
        assert "16 images: top-1" in stdout


def test_npz_needs_no_torch_and_pth_says_how_to_get_it(tmp_path, state, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    net, report = import_torch(_npz(tmp_path / "w.npz", state), input_size=32)
    assert (report.model, report.variant, report.source) == ("reactnet_a", "bf", "bnn_nobn")
    (tmp_path / "w.pth").write_bytes(b"not read")
    with pytest.raises(BnnError, match=r"needs PyTorch: pip install 'bnn-keras\[torch\]'"):
        read_checkpoint(tmp_path / "w.pth")


def _mutated(state, drop=(), add=None, reshape=None):
    out = {k: v for k, v in state.items() if k not in drop}
    out.update(add or {})
    for key, shape in (reshape or {}).items():
        out[key] = np.zeros(shape, np.float32)
    return out


@pytest.mark.parametrize("change, needle", [
    ({"drop": ["feature.3.move21.bias"]}, "checkpoint has no key 'feature.3.move21.bias'"),
    ({"add": {"feature.3.extra.weight": np.zeros(3, np.float32)}},
     "checkpoint key 'feature.3.extra.weight' is not part of"),
    ({"reshape": {"fc.bias": (11,)}}, "classifier/bias (fc) has shape (11,)"),
    ({"drop": ["fc.weight"]}, "no 'fc.weight'"),
])
@pytest.mark.isolated
def test_bad_checkpoints_get_one_line_and_no_output(change, needle, tmp_path, capsys, state):
    path = _npz(tmp_path / "bad.npz", _mutated(state, **change))
    out = tmp_path / "out.keras"
    code, _, err = run_main(["import", path, "-o", out, "--input-size", "32"], capsys)
    assert_one_line_error(code, err, needle)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.isolated
def test_other_architectures_and_wrong_claims(tmp_path, capsys, state):
    resnet = {"conv1.weight": np.zeros((64, 3, 7, 7), np.float32),
              "layer1.0.conv1.weight": np.zeros((64, 64, 3, 3), np.float32),
              "fc.weight": np.zeros((1000, 512), np.float32)}
    out = tmp_path / "out.keras"
    code, _, err = run_main(["import", _npz(tmp_path / "r.npz", resnet), "-o", out], capsys)
    assert_one_line_error(code, err, "match none of the official networks")
    good = _npz(tmp_path / "good.npz", state)
    for args, needle in ((["--model", "reactnet_18"], "holds reactnet_a bf, not reactnet_18"),
                         (["--variant", "bn"], "not the bn variant"),
                         (["--num-classes", "1000"], "has 10 classes, not 1000")):
        code, _, err = run_main(["import", good, "-o", out, "--input-size", "32", *args],
                                capsys)
        assert_one_line_error(code, err, needle)
    assert not out.exists()


@pytest.mark.isolated
def test_truncated_pth(tmp_path, capsys, state):
    torch = pytest.importorskip("torch")
    path = tmp_path / "cut.pth"
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    path.write_bytes(path.read_bytes()[:5000])
    code, _, err = run_main(["import", path, "-o", tmp_path / "o.keras"], capsys)
    assert_one_line_error(code, err, "cannot read checkpoint")


@pytest.mark.isolated
def test_reactnet_18_bn_needs_its_source():
    """BNN_NoBN and ReActNet write the same keys for ReActNet-18 bn; the downsample conv
    differs (binary kernel or real), so the user says which."""
    state = load_fixture("reactnet-reactnet_18-bn").state_dict()
    with pytest.raises(BnnError, match="same keys in bnn_nobn and reactnet: choose with"):
        import_torch(state, input_size=32)
    net, report = import_torch(state, input_size=32, source="reactnet")
    assert report.repository == "liuzechun/ReActNet"
    assert not hasattr(net.get_layer("stage2_block1_down_conv"), "kernel_quantizer")


@pytest.mark.isolated
def test_bnext_temperature_and_zero_weights():
    state = load_fixture("bnext-bnext_tiny-bn").state_dict()
    warm = dict(state, **{"feature.3.FFN.binary_conv.temperature": np.full(1, 0.5, np.float32)})
    net, report = import_torch(warm, input_size=64)
    assert report.soft_binary_convs == ["block3_1x1_conv"]
    assert "not binary yet" in report.summary()
    assert net.get_layer("block3_1x1_conv").kernel_quantizer.temperature.numpy() == 0.5
    weight = state["feature.3.FFN.binary_conv.weight"].copy()
    weight[0, 0, 0, 0] = 0.0
    _, report = import_torch(dict(state, **{"feature.3.FFN.binary_conv.weight": weight}),
                             input_size=64)
    assert report.zero_binary_weights == 1
    assert "1 binary weights are exactly 0" in report.summary()


@pytest.mark.isolated
def test_train_starts_from_the_imported_weights(tmp_path, capsys):
    """A recipe's run from an imported checkpoint: its first-batch loss (training mode)
    is the imported network's loss on that batch."""
    import csv

    import tf_keras as keras

    from bnn_keras import data

    # ReActNet-18, not the module's ReActNet-A: the same path at a third of the weights
    net, _ = import_torch(load_fixture("bnn_nobn-reactnet_18-bf").state_dict(),
                          input_size=32)
    path = tmp_path / "imported.keras"
    net.save(path)
    code, _, err = run_main(
        ["train", "--recipe", "zoo/recipes/reactnet_18_bf_cifar10.json",
         "--init-from", path, "--dataset", "digits", "--model-option", "stem=imagenet",
         "--teacher", "", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "16",
         "--output", tmp_path, "--name", "from-import", "--no-export", "--quiet"], capsys)
    assert code == 0, err
    with open(tmp_path / "from-import" / "history.csv") as f:
        first_loss = float(next(csv.DictReader(f))["loss"])
    x, y = next(iter(data.load("digits", batch_size=16, seed=0).train))
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        y, net(x, training=True))
    assert first_loss == pytest.approx(float(expected), rel=1e-4)


class _RunsCode:
    """Unpickled, it would run ``touch`` on its ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pth_holding_code_is_refused_in_one_complete_sentence(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": _RunsCode(marker)}, evil)
    code, _, err = run_main(["import", evil, "-o", tmp_path / "o.keras"], capsys)
    assert_one_line_error(code, err, f"refusing checkpoint {evil}: it holds objects other "
                                     "than tensors (posix.system)")
    assert err.strip().endswith("or its arrays as an .npz)")
    assert "weights_only=False" not in err and "weights_only` set to `False" not in err
    assert not marker.exists() and not (tmp_path / "o.keras").exists()
