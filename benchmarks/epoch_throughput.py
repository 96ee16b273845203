"""Where a training epoch's time goes: the run's step alone against `bnn-keras train`'s epochs.

Builds the run `bnn-keras train` builds from the same flags (data, network, trainer,
checkpoints, callbacks: :mod:`bnn_keras.training.run_steps`) in a scratch folder, then, in
one process:

1. times the trainer's step alone (``tf.function(trainer.train_step)`` on one batch of the
   run's own pipeline, as ``benchmarks/train_throughput.py`` does), best of ``--repeats``;
2. runs ``--epochs`` epochs through ``fit`` with the run's callbacks, timing for every
   epoch its start (from the previous epoch's end, the probe below excluded, to its first
   batch: ``fit`` replaces its training iterator there), the training batches, the
   validation pass, each callback's test-end and epoch-end work, and the rest (the
   epoch's time outside all of those: Keras's own work between validation and the
   epoch's end); the first epoch (tracing) is shown but left out of the mean;
3. times the step again after every epoch (best of 2 x ``--probe-steps``, outside the
   epoch's own time) and after the last, and prints each epoch's throughput against the
   faster of the probes on either side of it: this shared host drifts by several percent
   over minutes, so an epoch is set against the step as it ran around it, not minutes
   before;
4. with ``--peer-src PATH`` (a checkout of VITA-Group/BNN_NoBN; needs torch), times the
   official PyTorch step of the same network on the same batch shape: its
   ``models/Qaw_reactnet_18_<variant>.py`` network (``imagenet=False`` below 112 pixels,
   as our ``stem="auto"``), cross-entropy, backward, its ``agc.py`` clipping with our
   clip factor on every parameter but ``fc`` (as its ``train.py``), ``torch.optim.Adam``;
   float32, ``torch.set_num_threads`` at the CPU count.

    python benchmarks/epoch_throughput.py --epochs 3            # the default run
    python benchmarks/epoch_throughput.py --variant bn --precision mixed_bfloat16
    python benchmarks/epoch_throughput.py --peer-src ../BNN_NoBN --precision mixed_bfloat16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import bnn_keras  # noqa: F401  (Keras 2 before TensorFlow)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="reactnet_18")
    p.add_argument("--variant", default="bf")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="float32", help="as `bnn-keras train --precision`")
    p.add_argument("--epochs", type=int, default=3, help="epochs run (the first is tracing)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat of the step")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--probe-steps", type=int, default=5,
                   help="timed steps per repeat of the probe after every epoch (0: none)")
    p.add_argument("--peer-src", default="",
                   help="a VITA-Group/BNN_NoBN checkout: time its PyTorch step too")
    return p.parse_args()


def best_seconds(run, steps: int, repeats: int) -> float:
    """Seconds per step of ``run(steps)`` (which runs ``steps`` steps and waits for the
    last), the best of ``repeats`` runs: the least disturbed by this shared host."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        best = min(best, (time.perf_counter() - start) / steps)
    return best


def peer_model_file(src: str, variant: str) -> Path:
    """BNN_NoBN's ReActNet-18 file of ``variant`` under ``src``; exits with one line when
    it or torch is missing (checked before the long timing of our own run starts)."""
    model_py = Path(src) / "models" / f"Qaw_reactnet_18_{variant}.py"
    if not model_py.is_file():
        raise SystemExit(f"--peer-src: no {model_py} (a VITA-Group/BNN_NoBN checkout, "
                         "variants bn, bf, none)")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit("--peer-src needs torch (pip install -e \".[torch]\")") from None
    return model_py


def peer_step_seconds(src: str, variant: str, shape: tuple[int, int, int], batch: int,
                      classes: int, agc: float, lr: float, steps: int, repeats: int) -> float:
    """Seconds per step of BNN_NoBN's own ReActNet-18 training step (best repeat)."""
    import importlib.util
    import sys

    import torch
    import torch.nn.functional as F

    root = Path(src)
    model_py = peer_model_file(src, variant)
    sys.path.insert(0, str(root))  # its models import `layers`, its AGC is `agc`
    spec = importlib.util.spec_from_file_location("bnn_nobn_model", model_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from agc import adaptive_clip_grad

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    net = module.birealnet18(imagenet=shape[0] >= 112, num_classes=classes).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    clipped = [p for name, p in net.named_parameters() if "fc" not in name]
    x = torch.randn(batch, shape[2], shape[0], shape[1])
    y = torch.randint(0, classes, (batch,))

    def step() -> float:
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        if agc:
            adaptive_clip_grad(clipped, clip_factor=agc)
        optimizer.step()
        return loss.item()

    step()
    step()
    return best_seconds(lambda n: [step() for _ in range(n)], steps, repeats)


def _timed_callbacks(callbacks, keras, time_step=None):
    """Each callback's ``on_test_end`` and ``on_epoch_end`` (the hooks that run between
    the end of validation and the end of the epoch) wrapped to add their seconds to a
    shared table, a callback that records when each epoch's batches and its validation
    begin and end, and one after every other epoch-end that ends the epoch's clock, then
    (given ``time_step``) times the step alone, ``probes[e]`` seconds per step after
    epoch ``e`` (its steps train the scratch model too), before the next epoch's clock
    starts."""
    spent: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    probes: dict[int, float] = {}

    def wrap(cb):
        name = type(cb).__name__
        inner_test_end, inner_epoch_end = cb.on_test_end, cb.on_epoch_end

        def on_test_end(logs=None):
            start = time.perf_counter()
            inner_test_end(logs)
            spent[phases.epoch][name] += time.perf_counter() - start

        def on_epoch_end(epoch, logs=None):
            start = time.perf_counter()
            inner_epoch_end(epoch, logs)
            spent[epoch][name] += time.perf_counter() - start
        cb.on_test_end, cb.on_epoch_end = on_test_end, on_epoch_end
        return cb

    class Phases(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.clock = time.perf_counter()  # the first epoch's clock starts here

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.t0, self.t_begin = epoch, self.clock, time.perf_counter()
            spent[epoch]["start"] = self.t_begin - self.clock
            self.batch_seconds = batches[epoch] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.t_batch = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.batch_seconds.append(time.perf_counter() - self.t_batch)

        def on_test_begin(self, logs=None):
            spent[self.epoch]["batches"] += time.perf_counter() - self.t_begin
            self.t_test = time.perf_counter()

        def on_test_end(self, logs=None):
            spent[self.epoch]["validation"] += time.perf_counter() - self.t_test

        def on_epoch_end(self, epoch, logs=None):
            self.t_end = time.perf_counter()

    class Total(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            spent[epoch]["epoch"] = time.perf_counter() - phases.t0
            if time_step is not None:
                probes[epoch] = time_step()
            phases.clock = time.perf_counter()  # the next epoch's clock starts here

    batches: dict[int, list[float]] = {}
    phases = Phases()
    return [phases, *(wrap(cb) for cb in callbacks), Total()], spent, batches, probes


def main() -> None:
    args = _parse()
    if args.peer_src:
        if args.model != "reactnet_18":
            raise SystemExit("--peer-src: the PyTorch reference is BNN_NoBN's reactnet_18")
        peer_model_file(args.peer_src, args.variant)
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from bnn_keras.training import run_steps
    from bnn_keras.training.config import TrainConfig
    from bnn_keras.training.precision import resolve_precision
    from bnn_keras.training.run_folder import RunFolder

    precision = resolve_precision(args.precision)
    config = TrainConfig(model=args.model, variant=args.variant, dataset=args.dataset,
                         batch_size=args.batch_size, precision=precision,
                         epochs=args.epochs)
    strategy = tf.distribute.get_strategy()
    with tempfile.TemporaryDirectory(prefix="epoch-throughput-") as tmp:
        folder = RunFolder(tmp)
        keras.utils.set_random_seed(config.seed)
        setup = run_steps.build(config, strategy, folder, resume=False, chief=True)
        trainer = setup.trainer
        batch = next(iter(setup.train_data))
        images = int(batch[0].shape[0])

        step = tf.function(trainer.train_step, reduce_retracing=True)

        def run(steps: int) -> None:
            for _ in range(steps):
                out = step(batch)
            float(out["loss"])  # waits for the last step

        def step_seconds(repeats: int = args.repeats, steps: int = args.steps) -> float:
            return best_seconds(run, steps, repeats)

        step(batch)  # trace
        before = step_seconds()

        run_callbacks = run_steps._callbacks(config, setup, folder, None)
        probe = (lambda: step_seconds(2, args.probe_steps)) if args.probe_steps else None
        callbacks, spent, batches, probes = _timed_callbacks(run_callbacks, keras, probe)
        test = run_steps.evaluation_stream(config, setup.dataset.test)
        trainer.fit(setup.train_data, epochs=config.epochs, validation_data=test,
                    verbose=0, callbacks=callbacks)
        after = step_seconds()
    peer = None
    if args.peer_src:
        peer = peer_step_seconds(args.peer_src, args.variant, setup.dataset.input_shape,
                                 images, setup.dataset.num_classes, config.agc_clip,
                                 config.learning_rate, args.steps, args.repeats)

    fastest = min(before, after, *probes.values())
    step_ips = images / fastest
    train_images = setup.dataset.train_size
    print(f"epoch against step: {args.model} {args.variant} on {args.dataset}, batch "
          f"{args.batch_size}, {precision}, {train_images} training images, "
          f"{os.cpu_count()} CPUs, TF {tf.__version__}")
    print(f"step alone: {images / before:.1f} img/s before the epochs, {images / after:.1f} "
          f"after (best of {args.repeats} x {args.steps} steps)")
    names = sorted({k for row in spent.values() for k in row} - {"batches", "epoch"},
                   key=lambda k: (k != "start", k != "validation", k))
    around = {e: min(probes.get(e - 1, before), probes.get(e, after)) for e in spent}
    if probes:
        print("probe after each epoch: " + ", ".join(
            f"{images / probes[e]:.1f}" for e in sorted(probes)) + f" img/s (best of 2 x "
            f"{args.probe_steps} steps); 'vs around' sets an epoch against the faster probe "
            "on either side of it")
    print(f"{'epoch':<7}{'total s':>9}{'batches s':>11}"
          + "".join(f"{n[:14]:>16}" for n in names)
          + f"{'rest':>7}{'img/s':>8}{'vs step':>9}{'vs around':>11}")
    ratios, near = [], []
    for epoch in sorted(spent):
        row = spent[epoch]
        ips = train_images / row["epoch"]
        near_ips = images / around[epoch]
        if epoch > 0:
            ratios.append(ips / step_ips)
            near.append(ips / near_ips)
        print(f"{epoch + 1:<7}{row['epoch']:>9.2f}{row['batches']:>11.2f}"
              + "".join(f"{row.get(n, 0.0):>16.2f}" for n in names)
              + f"{row['epoch'] - row['batches'] - sum(row.get(n, 0.0) for n in names):>7.2f}"
              + f"{ips:>8.1f}{ips / step_ips:>8.0%}{ips / near_ips:>10.0%}"
              + ("  (tracing)" if epoch == 0 else ""))
    if ratios:
        print(f"epochs 2-{len(spent)}: {np.mean(ratios):.0%} of the step's best throughput "
              f"(min {min(ratios):.0%}); {np.mean(near):.0%} of the step around each epoch "
              f"(min {min(near):.0%})")
        later = [t for e in sorted(batches)[1:] for t in batches[e][:-1]]
        last = [batches[e][-1] for e in sorted(batches)[1:]]
        print(f"a batch inside fit (epochs 2-{len(spent)}): median {np.median(later):.3f} s "
              f"against {fastest:.3f} s alone; the epoch's last batch "
              f"({train_images % images or images} images) {np.median(last):.3f} s")
    if peer is not None:
        import torch

        epoch_ips = np.mean(ratios) * step_ips if ratios else float("nan")
        print(f"PyTorch reference (BNN_NoBN Qaw_reactnet_18_{args.variant}, torch "
              f"{torch.__version__}, float32): {images / peer:.1f} img/s per step; ours "
              f"{step_ips / (images / peer):.2f}x per step, "
              f"{epoch_ips / (images / peer):.2f}x per epoch")


if __name__ == "__main__":
    main()
