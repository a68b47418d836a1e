"""The shared training loop (advnets.gan.loop) on a few random images: what it tells its
TrainingLog, what it writes, and how it resumes, whoever records the run."""

import pytest
import torch

from advnets.eval.selection import Selector
from advnets.gan import loop
from advnets.gan.loop import TrainFiles, TrainingLog
from advnets.gan.trainer import Trainer
from conftest import override


class Interrupt(Exception):
    pass


class Recording(TrainingLog):
    """Every call, in order; begin returns `state`; epoch raises Interrupt after `stop_after` epochs."""

    def __init__(self, state="log-1", stop_after=None):
        self.calls, self.state, self.stop_after = [], state, stop_after

    def begin(self, run, resumed):
        self.calls.append(("begin", resumed, run.resumed_after))
        return self.state

    def epoch(self, run, row, score, seconds):
        self.calls.append(("epoch", row["epoch"], score is not None, sorted(seconds)))
        if self.stop_after == row["epoch"]:
            raise Interrupt

    def end(self, run):
        self.calls.append(("end", run.trainer.epoch, run.selector.best["epoch"] if run.selector else None))

    def abort(self, run, error):
        self.calls.append(("abort", type(error).__name__))


@pytest.fixture
def params(raw_params):
    from advnets.params import validate

    changes = {"model": {"g_hidden": [32, 32], "d_units": [16, 16], "d_pieces": 3},
               "train": {"epochs": 3, "batches_per_epoch": 4, "batch_size": 25, "monitor_samples": 10},
               "select": {"every": 2, "samples": 100, "valid_points": 100},
               "parzen": {"valid_points": 100}}
    return validate(override(raw_params, changes))


def images(n, seed):
    return torch.rand(n, 784, generator=torch.Generator().manual_seed(seed))


def start(params):
    train, valid, cpu = images(200, 0), images(200, 1), torch.device("cpu")
    return Trainer(params, train, valid, cpu), Selector(params, valid, cpu)


def files(tmp_path) -> TrainFiles:
    return TrainFiles(tmp_path / "checkpoint.pt", tmp_path / "g.pt", tmp_path / "d.pt", tmp_path / "train.json",
                      tmp_path / "curve.csv", tmp_path / "selection.csv")


def test_the_log_hears_every_epoch_its_scores_and_the_end(params, tmp_path):
    trainer, selector = start(params)
    log = Recording()
    run = loop.train(trainer, 3, files(tmp_path), log, params.flat("model", "train"), selector)
    assert log.calls[0] == ("begin", None, None)
    assert [c[1:3] for c in log.calls[1:4]] == [(1, False), (2, True), (3, True)]  # every 2, and the last
    assert log.calls[2][3] == ["epoch", "select"]
    assert log.calls[-1] == ("end", 3, run.selector.best["epoch"])
    assert [s["epoch"] for s in run.scores] == [2, 3]
    assert not (tmp_path / "checkpoint.pt").exists()  # removed once the run has ended
    best = selector.best["generator"]
    saved = torch.load(tmp_path / "g.pt", weights_only=True)
    assert all(torch.equal(saved[k], best[k]) for k in best)
    assert (tmp_path / "curve.csv").read_text().count("\n") == 4  # header and three epochs


def test_an_interrupted_run_keeps_its_checkpoint_tells_the_log_and_resumes_bit_for_bit(params, tmp_path):
    trainer, selector = start(params)
    whole = loop.train(trainer, 3, files(tmp_path / "whole"), TrainingLog(), params.flat("model", "train"), selector)

    trainer, selector = start(params)
    first = Recording(state="run-7", stop_after=2)
    with pytest.raises(Interrupt):
        loop.train(trainer, 3, files(tmp_path), first, params.flat("model", "train"), selector)
    assert first.calls[-1] == ("abort", "Interrupt")
    assert (tmp_path / "checkpoint.pt").exists()

    trainer, selector = start(params)  # a fresh process: everything from the checkpoint
    second = Recording()
    resumed = loop.train(trainer, 3, files(tmp_path), second, params.flat("model", "train"), selector)
    assert second.calls[0] == ("begin", "run-7", 2)  # begin's state, kept in the checkpoint
    assert [c[1] for c in second.calls if c[0] == "epoch"] == [3]
    for key, value in whole.trainer.nets.generator.state_dict().items():
        assert torch.equal(value, resumed.trainer.nets.generator.state_dict()[key]), key
    untimed = [[{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in run.history]
               for run in (whole, resumed)]
    assert untimed[0] == untimed[1] and whole.scores == resumed.scores


def test_a_checkpoint_of_other_params_is_refused(params, tmp_path):
    from advnets.gan.checkpoint import ResumeError

    trainer, selector = start(params)
    with pytest.raises(Interrupt):
        loop.train(trainer, 3, files(tmp_path), Recording(stop_after=1), params.flat("model", "train"), selector)
    trainer, selector = start(params)
    other = {**params.flat("model", "train"), "train.lr": 0.2}
    with pytest.raises(ResumeError):
        loop.train(trainer, 3, files(tmp_path), Recording(), other, selector)


def test_stop_ends_the_run_after_the_epoch_under_way_and_scores_its_last(params, tmp_path):
    trainer, selector = start(params)
    log, asked = Recording(), []

    def stop():
        asked.append(trainer.epoch)
        return trainer.epoch == 1

    run = loop.train(trainer, 3, TrainFiles(), log, {}, selector, stop=stop)
    assert asked == [0, 1] and trainer.epoch == 1
    assert [s["epoch"] for s in run.scores] == [1]  # scored after the loop: the last epoch always is
    assert log.calls[-1] == ("end", 1, 1)
