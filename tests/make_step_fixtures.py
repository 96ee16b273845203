"""Make ``tests/data/official_steps/*.npz``: three optimizer steps of the official training.

For each case: the official network (seeded weights as ``make_official_fixtures.py``
builds it, BatchNorm running statistics at PyTorch's initial values), 8 digits images,
and three optimizer steps done as the official training script does them with the
recipe's values: its parameter groups and weight decay, its loss (labels, label
smoothing, or distillation from fixed teacher logits, BNext's two-teacher weighting
included), its clipping (BNN_NoBN's ``adaptive_clip_grad``, BNext's global-norm clip),
its optimizer, its learning-rate scheduler stepped to the epoch, BNext's weight
temperature for that epoch, all in float64: a binary net turns a rounding difference
into a sign flip wherever a weight or an activation lies within rounding of zero, and in
float32 two correct implementations of a full-width net part that way within three
steps; in float64 they cannot. Stored: the loss of each step, the learning rates of the
first, a middle and the last epoch, and the weights after the three steps: small tensors
whole, larger ones as their norm and 8 projections on seeded Gaussian directions
(``bnn_keras.official_fixtures.direction``), enough to measure a relative difference.
``tests/test_official_steps.py`` does the same three steps with bnn-keras and compares.

The official scripts need CUDA and ImageNet, so their step is written out here from
their code (each line cited); the networks, ``adaptive_clip_grad`` and the losses are the
official modules, imported and run. Needs PyTorch, scikit-learn and the checkouts::

    python tests/make_step_fixtures.py --official ../official [--cases NAME,...]

(the checkouts as in ``make_official_fixtures.py``). Remake a fixture when its recipe's
values change.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from make_official_fixtures import commit, digits, load_module, seeded_network  # noqa: E402

from bnn_keras.official_fixtures import STEP_FIXTURES, direction  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "zoo" / "recipes"
BATCH, SIZE, CLASSES, STEPS = 8, 32, 10, 3
#: tensors up to this many elements are stored whole
WHOLE = 128

#: name: (repository folder, file, constructor, model, variant, source, recipe, stage,
#: training script family, epoch the steps run in)
CASES = {
    "bnn_nobn-reactnet_a-bn-stage1": ("BNN_NoBN", "models/Qa_reactnet_A_bn.py",
                                      "M.reactnet(num_classes=C)", "reactnet_a", "bn",
                                      "bnn_nobn", "reactnet_a_bn_imagenet.json", 1,
                                      "bnn_nobn", 0),
    "bnn_nobn-reactnet_a-bn-stage2": ("BNN_NoBN", "models/Qaw_reactnet_A_bn.py",
                                      "M.reactnet(num_classes=C)", "reactnet_a", "bn",
                                      "bnn_nobn", "reactnet_a_bn_imagenet.json", 2,
                                      "bnn_nobn", 0),
    "bnn_nobn-reactnet_a-bf-stage1": ("BNN_NoBN", "models/Qa_reactnet_A_bf.py",
                                      "M.reactnet(num_classes=C)", "reactnet_a", "bf",
                                      "bnn_nobn", "reactnet_a_bf_imagenet.json", 1,
                                      "bnn_nobn", 0),
    "bnn_nobn-reactnet_a-bf-stage2": ("BNN_NoBN", "models/Qaw_reactnet_A_bf.py",
                                      "M.reactnet(num_classes=C)", "reactnet_a", "bf",
                                      "bnn_nobn", "reactnet_a_bf_imagenet.json", 2,
                                      "bnn_nobn", 0),
    "bnn_nobn-reactnet_18-bf": ("BNN_NoBN", "models/Qaw_reactnet_18_bf.py",
                                "M.birealnet18(num_classes=C)", "reactnet_18", "bf",
                                "bnn_nobn", "reactnet_18_bf_cifar10.json", 0, "bnn_nobn", 0),
    "reactnet-reactnet_18-bn-stage1": ("ReActNet", "resnet/1_step1/birealnet.py",
                                       "M.birealnet18(num_classes=C)", "reactnet_18", "bn",
                                       "reactnet", "reactnet_18_bn_imagenet.json", 1,
                                       "reactnet", 0),
    "reactnet-reactnet_18-bn-stage2": ("ReActNet", "resnet/2_step2/birealnet.py",
                                       "M.birealnet18(num_classes=C)", "reactnet_18", "bn",
                                       "reactnet", "reactnet_18_bn_imagenet.json", 2,
                                       "reactnet", 0),
    "bireal-birealnet_18": ("Bi-Real-net", "pytorch_implementation/BiReal18_34/birealnet.py",
                            "M.birealnet18(num_classes=C)", "birealnet_18", "bn", "bireal",
                            "birealnet_18_imagenet.json", 0, "bireal", 0),
    "bnext-bnext_tiny": ("BNext", "src/bnext.py", "M.BNext(num_classes=C, size='tiny')",
                         "bnext_tiny", "bn", "bnext", "bnext_tiny_imagenet.json", 0, "bnext",
                         5),
}


def recipe_values(recipe: str, stage: int) -> dict:
    data = json.loads((RECIPES / recipe).read_text())
    values = dict(data["config"])
    values.update((data.get("stages") or {}).get(str(stage), {}))
    return values


def _kd_loss(official: Path, folder: str):
    """The official DistributionLoss (ReActNet / BNN_NoBN ``utils``, BNext ``utils/KD_loss``)."""
    if folder == "BNN_NoBN":
        return load_module(official / "BNN_NoBN", "utils.py", "official_bnn_nobn_utils")
    if folder == "BNext":
        return load_module(official / "BNext", "utils/KD_loss.py", "official_bnext_kd")
    return load_module(official / "ReActNet", "utils/KD_loss.py", "official_reactnet_kd")


def official_steps(name: str, official: Path, start: int = 66, double: bool = True
                   ) -> tuple[dict, dict]:
    """Run the three steps on the batch of digits images from ``start`` (after the
    official-network fixtures' images), in float64 unless ``double`` is off; the
    fixture's arrays and the state dict after the steps."""
    import torch
    import torch.nn.functional as F

    folder, file, constructor, model, variant, source, recipe, stage, script, epoch = CASES[name]
    values = recipe_values(recipe, stage)
    root = official / folder
    # BatchNorm trains on batch statistics; its running ones start at PyTorch's (0, 1)
    net, shapes, measured = seeded_network(root, file, constructor, CLASSES, SIZE,
                                           f"step_{name.replace('-', '_')}", calibrate=False)
    if double:
        net.double()
    rng = np.random.default_rng(0)
    images = digits(SIZE)
    x = images[start:start + BATCH]
    from sklearn.datasets import load_digits

    y = load_digits().target[start:start + BATCH].astype(np.int64)
    kd = bool(values.get("teacher"))
    # float32 values (a teacher's logits are float32), held in float64
    teachers = rng.normal(0, 2, (2 if values.get("assistants") else 1, BATCH, CLASSES)
                          ).astype(np.float32).astype(np.float64)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    xt = xt.double() if double else xt
    yt = torch.from_numpy(y)

    # parameter groups: BNN_NoBN train.py:102, ReActNet resnet/*/train.py:80
    # (ndimension() == 4 or 'conv' in name); BNext train_assistant_group_amp.py:412
    # (... or 'binary_conv' in name); Bi-Real train.py:70 (... or the classifier.0 names)
    def in_group(n: str, p) -> bool:
        if script == "bnext":
            return p.ndimension() == 4 or "binary_conv" in n
        if script == "bireal":
            return p.ndimension() == 4 or n in ("classifier.0.weight", "classifier.0.bias")
        return p.ndimension() == 4 or "conv" in n

    weight = [p for n, p in net.named_parameters() if in_group(n, p)]
    ids = {id(p) for p in weight}
    other = [p for p in net.parameters() if id(p) not in ids]
    lr = values["learning_rate"]
    if values.get("optimizer") == "adamw":
        optimizer = torch.optim.AdamW([{"params": other, "weight_decay": values["weight_decay"]},
                                       {"params": weight,
                                        "weight_decay": values["kernel_weight_decay"]}], lr=lr)
    else:
        optimizer = torch.optim.Adam([{"params": other},
                                      {"params": weight,
                                       "weight_decay": values.get("kernel_weight_decay", 0.0)}],
                                     lr=lr)
    epochs = values["epochs"]
    if script == "bnext":  # timm CosineLRScheduler(t_initial=epochs, warmup_t=5, ...), :437
        def lr_at(e):
            warm, start_lr, low = values["warmup_epochs"], values["warmup_lr"], values["min_lr"]
            if e < warm:
                return start_lr + e * (lr - start_lr) / warm
            return low + 0.5 * (lr - low) * (1 + math.cos(math.pi * (e - warm) / epochs))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch)
        lrs = [lr_at(e) for e in (0, epochs // 2, epochs - 1)]
        # adjust_temperature (:174-186): x0.9 after every epoch but the first
        for module in net.modules():
            if hasattr(module, "temperature"):
                module.temperature.fill_(0.9**epoch)
    else:  # LambdaLR(lambda step: 1 - step / epochs), stepped before every epoch
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0 - e / epochs)
        seen = {}
        for e in range(epochs):
            scheduler.step()
            seen[e] = optimizer.param_groups[0]["lr"]
        lrs = [seen[e] for e in (0, epochs // 2, epochs - 1)]
        for group in optimizer.param_groups:
            group["lr"] = seen[epoch]

    kd_module = _kd_loss(official, folder) if kd else None
    agc = load_module(official / "BNN_NoBN", "agc.py", "official_agc").adaptive_clip_grad
    losses = []
    net.train()
    for _ in range(STEPS):
        logits = net(xt)
        if script == "bnext" and kd:  # train_assistant_group_amp.py:756-784
            criterion = kd_module.DistributionLoss()
            teacher_logits = [torch.from_numpy(t).to(logits.dtype) for t in teachers]
            entropy = [criterion(logits, t, reduce=True) for t in teacher_logits]
            alpha = torch.softmax(torch.cat([
                torch.nn.CrossEntropyLoss(reduce=False)(logits, torch.softmax(t, -1))
                .unsqueeze(-1) for t in teacher_logits], -1), -1).detach()
            loss = torch.mean(sum(entropy[k] * alpha[:, k] for k in range(len(entropy)))
                              / len(entropy))
        elif kd:
            loss = kd_module.DistributionLoss()(logits,
                                                torch.from_numpy(teachers[0]).to(logits.dtype))
        elif values.get("label_smoothing"):
            eps = values["label_smoothing"]
            target = F.one_hot(yt, CLASSES).to(logits.dtype) * (1 - eps) + eps / CLASSES
            loss = (-target * F.log_softmax(logits, 1)).mean(0).sum()
        else:
            loss = F.cross_entropy(logits, yt)
        optimizer.zero_grad()
        loss.backward()
        if values.get("agc_clip"):  # BNN_NoBN train.py:224-229: every parameter but 'fc'
            agc([p for n, p in net.named_parameters() if "fc" not in n],
                clip_factor=values["agc_clip"])
        if values.get("grad_clip_norm"):  # BNext :811
            torch.nn.utils.clip_grad_norm_(net.parameters(), values["grad_clip_norm"])
        optimizer.step()
        losses.append(float(loss))

    if script == "bnext":  # what BNext's next training forward clamps in place first
        for module in net.modules():
            if isinstance(getattr(module, "scale", None), torch.nn.Parameter):
                module.scale.data.clamp_(0, 1)  # src/bnext.py:192, 246, 298
            if type(module).__name__ == "HardBinaryConv":
                module.weight.data.clamp_(-1.5, 1.5)  # src/bnext.py:103
    arrays = {"inputs": x, "labels": y, "teacher_logits": teachers.astype(np.float32),
              "losses": np.asarray(losses), "lrs": np.asarray(lrs, np.float64),
              "kd_check": _kd_check(kd_module, script, teachers)}
    whole, projected = [], []
    for key, value in net.state_dict().items():
        after = value.detach().numpy()
        if after.dtype.kind != "f":
            continue
        if after.size <= WHOLE:
            arrays[f"after/{key}"] = after
            whole.append(key)
        else:
            arrays[f"proj/{key}"] = np.asarray(
                [float(np.vdot(direction(key, after.shape, i), after)) for i in range(8)])
            arrays[f"norm/{key}"] = np.asarray(np.linalg.norm(after))
            projected.append(key)
    meta = {"repository": folder, "commit": commit(root), "file": file,
            "constructor": constructor.replace("M.", "").replace("C", str(CLASSES)),
            "model": model, "variant": variant, "source": source, "recipe": recipe,
            "batch_start": start,
            "stage": stage, "epoch": epoch, "epochs_checked": [0, epochs // 2, epochs - 1],
            "batch": BATCH, "input_size": SIZE, "num_classes": CLASSES, "steps": STEPS,
            "torch": torch.__version__}
    arrays["manifest"] = np.array(json.dumps({
        "meta": meta, "shapes": [[k, list(s)] for k, s in shapes.items()],
        "measured": sorted(measured), "whole": whole, "projected": projected}))
    arrays.update({f"measured/{k}": v for k, v in measured.items()})
    return arrays, {k: v.detach().numpy() for k, v in net.state_dict().items()}


def _kd_check(kd_module, script: str, teachers: np.ndarray) -> np.ndarray:
    """The official distillation loss of seeded student logits (N(0, 4), generator seed
    1) against the first teacher's logits; empty without distillation."""
    if kd_module is None:
        return np.zeros(0)
    import torch

    student = torch.from_numpy(np.random.default_rng(1).normal(0, 2, teachers.shape[1:]))
    return np.asarray([float(kd_module.DistributionLoss()(student,
                                                           torch.from_numpy(teachers[0])))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    STEP_FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in args.cases.split(","):
        out = STEP_FIXTURES / f"{name}.npz"
        arrays, _ = official_steps(name, args.official)
        np.savez_compressed(out, **arrays)
        print(f"{name}: {out} ({out.stat().st_size / 1024:.0f} KiB)", flush=True)


if __name__ == "__main__":
    main()
