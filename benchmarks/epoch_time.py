"""Wall time of MNIST training epochs as the train stage runs them, on real MNIST.

Runs the train stage's own loop (advnets.gan.loop: the Trainer's steps and per-epoch monitor, the
selection) with its checkout's params.yaml, optionally changed by --set, reporting to a JSON run
log (advnets.provenance.runlog) instead of MLflow, and prints each epoch's seconds: the steps alone, the
whole epoch, and, every select.every epochs with --select, the validation selection score and its
time. No MLflow or DVC: a speed check, or a quick look at how a configuration learns on a machine
without the tracking stack. --json writes the rows with the params, commit and data md5s (at every
scored epoch and at the end); --save writes the generator of the best epoch on validation (the
train stage's selection), which `advnets record JSON FILE` scores on the test set and logs as a
training run in the MLflow store. SIGTERM ends the run after the epoch under way, files whole.

    python benchmarks/epoch_time.py [--device cpu|cuda] [--epochs 5] [--select] [--set train.seed=3]
                                    [--json FILE] [--save FILE]
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

# This checkout's advnets ahead of any installed one, as stages/_this_checkout.py does for the
# stages: the record names this checkout's commit as the code that ran.
CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT / "src"))

import torch
import yaml

from advnets.atomic import md5_of
from advnets.data.mnist import load_mnist
from advnets.device import device_name
from advnets.eval.selection import Selector
from advnets.gan import loop
from advnets.gan.loop import TrainFiles
from advnets.gan.trainer import Trainer
from advnets.params import read_yaml, validate
from advnets.provenance.repository import git_state
from advnets.provenance.runlog import JsonRunLog, device_record


def params_with(overrides: list[str]):
    """The checkout's params.yaml with `section.key=value` overrides (values parsed as YAML), validated."""
    raw = read_yaml(CHECKOUT / "params.yaml")
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section not in raw or not name:
            raise SystemExit(f"--set {item}: expected section.key=value with a params.yaml section")
        raw[section][name] = yaml.safe_load(value)
    return validate(raw, source="params.yaml with --set")


def commit() -> str:
    """The checkout's HEAD, with "+changes" when its tree differs from it (repository.git_state)."""
    state = git_state(CHECKOUT)
    return state["git.commit"] + ("+changes" if state["git.dirty"] == "true" else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--data", type=Path, default=CHECKOUT / "data", help="root holding mnist/ (`dvc repro download`)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change a param")
    parser.add_argument("--select", action="store_true", help="score on validation every select.every epochs")
    parser.add_argument("--json", type=Path, help="write params, commit and rows here")
    parser.add_argument("--save", type=Path, metavar="FILE", help="with --select: the best epoch's generator")
    args = parser.parse_args()
    if args.save and not args.select:
        parser.error("--save needs --select: the saved generator is the best epoch on validation")
    params = params_with(args.set + [f"train.epochs={args.epochs}"])
    device = torch.device(args.device)

    train_images, valid_images = load_mnist("train", args.data)[0], load_mnist("valid", args.data)[0]
    trainer = Trainer(params, train_images, valid_images, device)
    selector = Selector(params, valid_images, device) if args.select else None
    name = device_name(device)
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{trainer.batches_per_epoch} steps per epoch, changed: {args.set or 'nothing'}", flush=True)

    data = {split: md5_of(args.data / "mnist" / f"{split}.pt") for split in ("train", "valid")}
    record = {"commit": commit(), **device_record(device, name), "changed": args.set,
              "params": params.model_dump(), "data_md5": data}
    stopping = []  # SIGTERM (e.g. timeout's) ends the run after the epoch under way, its files whole
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    log = TimedRunLog(args.json, args.save, record)
    loop.train(trainer, args.epochs, TrainFiles(), log, params.flat("model", "train"), selector, stop=lambda: bool(stopping))
    if stopping:
        print(f"stopped by SIGTERM after epoch {trainer.epoch}", flush=True)

    rows = log.rows
    steady = rows[1:] or rows  # the first epoch includes warm-up (allocator, kernels, caches)
    mean = sum(r["epoch_seconds"] for r in steady) / len(steady)
    which = f"epochs 2-{len(rows)}" if len(rows) > 1 else "epoch 1"
    print(f"mean over {which}: {mean:.3f} s per epoch ({trainer.batches_per_epoch} steps)")


class TimedRunLog(JsonRunLog):
    """The run log, and each epoch's times on the screen."""

    def epoch(self, run, row, score, seconds) -> None:
        super().epoch(run, row, score, seconds)
        row = self.rows[-1]
        shown = f"  validation {row['select.valid_ll']:7.2f} ({row['select_seconds']:.2f} s)" if score else ""
        print(f"epoch {row['epoch']:4d}: steps {row['seconds']:6.2f} s, epoch {row['epoch_seconds']:6.2f} s, "
              f"{row['images_per_s']:8.0f} images/s, monitor {row['valid_parzen']:7.2f}{shown}", flush=True)


if __name__ == "__main__":
    main()
