"""Make ``tests/data/official/*.npz`` by running the official PyTorch code.

For each case below: build the network with the official repository's own constructor,
set every tensor to :func:`bnn_keras.official_fixtures.seeded_tensor` of its key, measure the
BatchNorm running statistics on digits images (train mode, cumulative averages, then
rounded to float16 so the stored values are exactly the ones used), and record the
logits the official network gives in eval mode for two more images.
``tests/test_official.py`` rebuilds the same state dict, imports it with
``bnn_keras.models.import_torch`` and requires the Keras network to give these logits.

Needs PyTorch (``pip install -e ".[torch]"``), scikit-learn (the digits) and checkouts
of the four repositories; nothing of them is copied into the fixtures but tensor shapes,
statistics and outputs::

    git clone https://github.com/VITA-Group/BNN_NoBN ../official/BNN_NoBN
    git clone https://github.com/liuzechun/ReActNet ../official/ReActNet
    git clone https://github.com/liuzechun/Bi-Real-net ../official/Bi-Real-net
    git clone https://github.com/hpi-xnor/BNext ../official/BNext
    python tests/make_official_fixtures.py --official ../official [--cases NAME,...]

BNext's ``src/bnext.py`` imports torchinfo, einops and timm at the top but uses none of
them; when they are not installed (or do not import) the script gives it empty stand-ins.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bnn_keras.official_fixtures import FIXTURES, MEASURED, seeded_tensor  # noqa: E402

#: name: (repository folder, file, constructor expression, model, variant, source,
#: input size). ``M`` is the loaded module, ``C`` the class count.
CASES = {
    "bnn_nobn-reactnet_18-bn": ("BNN_NoBN", "models/Qaw_reactnet_18_bn.py",
                                "M.birealnet18(num_classes=C)", "reactnet_18", "bn",
                                "bnn_nobn", 64, 10),
    "bnn_nobn-reactnet_18-bf": ("BNN_NoBN", "models/Qaw_reactnet_18_bf.py",
                                "M.birealnet18(num_classes=C)", "reactnet_18", "bf",
                                "bnn_nobn", 64, 10),
    "bnn_nobn-reactnet_18-none": ("BNN_NoBN", "models/Qaw_reactnet_18_none.py",
                                  "M.birealnet18(num_classes=C)", "reactnet_18", "none",
                                  "bnn_nobn", 32, 10),
    "bnn_nobn-reactnet_34-bf": ("BNN_NoBN", "models/Qaw_reactnet_18_bf.py",
                                "M.BiRealNet(M.BasicBlock, [6, 8, 12, 6], num_classes=C)",
                                "reactnet_34", "bf", "bnn_nobn", 32, 10),
    "bnn_nobn-reactnet_a-bn": ("BNN_NoBN", "models/Qaw_reactnet_A_bn.py",
                               "M.reactnet(num_classes=C)", "reactnet_a", "bn", "bnn_nobn",
                               64, 10),
    "bnn_nobn-reactnet_a-bf": ("BNN_NoBN", "models/Qaw_reactnet_A_bf.py",
                               "M.reactnet(num_classes=C)", "reactnet_a", "bf", "bnn_nobn",
                               32, 10),
    "bnn_nobn-reactnet_a-none": ("BNN_NoBN", "models/Qaw_reactnet_A_none.py",
                                 "M.reactnet(num_classes=C)", "reactnet_a", "none",
                                 "bnn_nobn", 32, 10),
    "reactnet-reactnet_18-bn": ("ReActNet", "resnet/2_step2/birealnet.py",
                                "M.birealnet18(num_classes=C)", "reactnet_18", "bn",
                                "reactnet", 32, 1000),
    "reactnet-reactnet_34-bn": ("ReActNet", "resnet/2_step2/birealnet.py",
                                "M.birealnet34(num_classes=C)", "reactnet_34", "bn",
                                "reactnet", 32, 10),
    "reactnet-reactnet_a-bn": ("ReActNet", "mobilenet/2_step2/reactnet.py",
                               "M.reactnet(num_classes=C)", "reactnet_a", "bn", "reactnet",
                               32, 1000),
    "bireal-birealnet_18-bn": ("Bi-Real-net", "pytorch_implementation/BiReal18_34/birealnet.py",
                               "M.birealnet18(num_classes=C)", "birealnet_18", "bn", "bireal",
                               32, 1000),
    "bireal-birealnet_34-bn": ("Bi-Real-net", "pytorch_implementation/BiReal18_34/birealnet.py",
                               "M.birealnet34(num_classes=C)", "birealnet_34", "bn", "bireal",
                               32, 10),
    "bnext-bnext_tiny-bn": ("BNext", "src/bnext.py", "M.BNext(num_classes=C, size='tiny')",
                            "bnext_tiny", "bn", "bnext", 64, 1000),
    "bnext-bnext_small-bn": ("BNext", "src/bnext.py", "M.BNext(num_classes=C, size='small')",
                             "bnext_small", "bn", "bnext", 32, 10),
    "bnext-bnext_middle-bn": ("BNext", "src/bnext.py",
                              "M.BNext(num_classes=C, size='middle')", "bnext_middle", "bn",
                              "bnext", 32, 1000),
    "bnext-bnext_large-bn": ("BNext", "src/bnext.py", "M.BNext(num_classes=C, size='large')",
                             "bnext_large", "bn", "bnext", 32, 1000),
}
REPOSITORIES = {"BNN_NoBN": "VITA-Group/BNN_NoBN", "ReActNet": "liuzechun/ReActNet",
                "Bi-Real-net": "liuzechun/Bi-Real-net", "BNext": "hpi-xnor/BNext"}
CALIBRATION_IMAGES = 64


def digits(size: int) -> np.ndarray:
    """sklearn's digits as ``(N, size, size, 3)`` float32, standardised: the image, its
    transpose and its vertical mirror as the three channels (no two alike, no symmetry
    a layout bug could hide behind)."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0
    images = np.stack([images, images.transpose(0, 2, 1), images[:, ::-1]], axis=-1)
    images = images.repeat(size // 8, axis=1).repeat(size // 8, axis=2)
    return ((images - images.mean()) / images.std()).astype(np.float32)


def load_module(root: Path, file: str, name: str):
    """Import ``root/file`` as ``name``, its own folder and ``root`` on ``sys.path`` (the
    official files import their siblings, e.g. ``from layers import *``)."""
    if "bnext" in file:
        stubs = {"torchinfo": ["torchinfo"], "einops": ["einops"],
                 "timm": ["timm", "timm.models", "timm.models.layers"]}
        for names in stubs.values():
            try:
                importlib.import_module(names[-1])
                continue
            except Exception:  # noqa: BLE001 - missing, or too old for this Python
                pass
            for stub in names:
                module = sys.modules[stub] = types.ModuleType(stub)
                for attr in ("summary", "rearrange", "trunc_normal_", "DropPath"):
                    setattr(module, attr, None)
    path = root / file
    sys.path[:0] = [str(path.parent), str(root)]
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        del sys.path[:2]
    return module


def commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def seeded_network(root: Path, file: str, constructor: str, classes: int, size: int,
                   module_name: str, calibrate: bool = True):
    """The official network of ``root/file`` built by ``constructor``, every tensor
    :func:`seeded_tensor` of its key, BatchNorm statistics measured on digits images
    (``calibrate``) or PyTorch's initial ones: ``(net, shapes, measured)``."""
    import torch

    module = load_module(root, file, module_name)
    torch.manual_seed(0)
    net = eval(constructor, {"M": module, "C": classes})  # noqa: S307 - our own table
    state = net.state_dict()
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    seeded = {key: torch.from_numpy(seeded_tensor(key, shape)) for key, shape in shapes.items()
              if key.rsplit(".", 1)[-1] not in MEASURED}
    net.load_state_dict({**state, **seeded})
    calibration = digits(size)[2:2 + CALIBRATION_IMAGES]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    measured = {}
    if norms and not calibrate:
        for norm in norms:
            norm.reset_running_stats()
    elif norms:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the calibration batches
        net.train()
        with torch.no_grad():
            for batch in np.split(calibration, 2):
                net(torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()))
        for key, value in net.state_dict().items():
            if key.endswith(("running_mean", "running_var")):
                value.copy_(value.half().float())  # the stored values are the ones used
                measured[key] = value.numpy().astype(np.float16)
        for norm in norms:
            norm.momentum = 0.1  # PyTorch's default, as the official nets train with it
    return net, shapes, measured


def make(name: str, official: Path) -> Path:
    import torch

    folder, file, constructor, model, variant, source, size, classes = CASES[name]
    root = official / folder
    net, shapes, measured = seeded_network(root, file, constructor, classes, size,
                                           f"official_{name.replace('-', '_')}")
    inputs = digits(size)[:2]
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(inputs.transpose(0, 3, 1, 2).copy())).numpy()
    if not np.isfinite(logits).all():
        raise SystemExit(f"{name}: the official network gave non-finite logits")

    meta = {"repository": REPOSITORIES[folder], "commit": commit(root), "file": file,
            "constructor": constructor.replace("M.", "").replace("C", str(classes)),
            "model": model, "variant": variant, "source": source, "input_size": size,
            "num_classes": classes, "torch": torch.__version__}
    manifest = {"meta": meta, "shapes": [[k, list(s)] for k, s in shapes.items()],
                "measured": sorted(measured)}
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out = FIXTURES / f"{name}.npz"
    np.savez_compressed(out, manifest=np.array(json.dumps(manifest)), inputs=inputs,
                        logits=logits.astype(np.float32),
                        **{f"measured/{k}": v for k, v in measured.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True,
                        help="folder holding the BNN_NoBN, ReActNet, Bi-Real-net and BNext "
                             "checkouts")
    parser.add_argument("--cases", default=",".join(CASES),
                        help="comma-separated case names (default: all)")
    args = parser.parse_args()
    for name in args.cases.split(","):
        out = make(name, args.official)
        print(f"{name}: {out} ({out.stat().st_size / 1024:.0f} KiB)", flush=True)


if __name__ == "__main__":
    main()
