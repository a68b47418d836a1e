import pytest

from advnets.params import validate
from advnets.report.extrapolation import foresight_error, rise_to_schedule_end
from advnets.report.results import results_markdown

TRAIN = {
    "epoch": 7, "d_loss": 0.5, "g_loss": 1.1, "d_real": 0.6, "d_fake": 0.4, "valid_parzen": -50.0,
    "selected_epoch": 5, "selected_valid_ll": 210.04, "selected_valid_ll_se": 1.96, "selected_sigma": 0.1668,
}
CHECK = {
    "jsd": 0.1, "c_of_g": -1.186, "minus_log4_plus_2jsd": -1.186,
    "value_with_converged_d": -1.19, "max_abs_d_minus_d_star": 0.05,
}
TOY = {"final_jsd": 0.03, "final_mean_abs_d_minus_half": 0.002, "g_at_step_0": CHECK}
PARZEN = {
    "sigma": 0.1668, "test_ll_mean": 221.37, "test_ll_se": 2.04, "n_samples": 10000,
    "baselines": {
        "real_training_images": {"n_samples": 10000, "sigma": 0.1668, "test_ll_mean": 241.2, "test_ll_se": 2.1},
        "paper_table1": {"source": "the paper", "DBN": {"mean": 138.0, "se": 2.0}, "Adversarial nets": {"mean": 225.0, "se": 2.0}},
    },
}


def test_table_has_the_paper_rows_ours_and_the_calibration(raw_params):
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY)
    assert "| DBN | 138 ± 2 | paper |" in text
    assert "| Adversarial nets | 225 ± 2 | paper |" in text
    assert "seed 0, `simultaneous` update, epoch 5 of 7" in text and "**221.4 ± 2.0**" in text
    assert "epoch 5's, the best of every 5 epochs on validation data alone" in text and "210.0 ± 2.0" in text
    assert "real training images as the samples (σ = 0.1668) | 241.2 ± 2.1 |" in text
    assert "| g at step 0 | 0.1000 | -1.1860 |" in text
    assert "(../figures/figure2.png)" in text
    assert "validation images the scored samples reach" not in text  # a parzen.json without those figures


def test_the_selection_images_scores_stand_beside_the_test_ones(raw_params):
    real = {**PARZEN["baselines"]["real_training_images"], "selection_ll_mean": 247.9, "selection_ll_se": 2.21}
    parzen = {
        **PARZEN, "selection_ll_mean": 226.71, "selection_ll_se": 2.34, "n_selection": 9000,
        "baselines": {**PARZEN["baselines"], "real_training_images": real},
    }
    text = results_markdown(validate(raw_params), TRAIN, parzen, TOY)
    assert (
        "On those 9000 validation images the scored samples reach 226.7 ± 2.3, against 221.4 on the test set, "
        "and the calibration's real training images 247.9 ± 2.2, against 241.2"
    ) in text


SEEDS = {
    "n_seeds": 2, "test_ll_mean": 222.5, "test_ll_sd": 3.54,
    "seeds": [
        {"seed": 0, "test_ll_mean": 220.0, "test_ll_se": 2.1, "selected_epoch": 245, "run_id": "abc",
         "dvc_experiment": None, "git_commit": "38f4b06ee3", "generator_md5": "cf1a"},
        {"seed": 1, "test_ll_mean": 225.0, "test_ll_se": 2.2, "selected_epoch": 240, "run_id": "def",
         "dvc_experiment": "seed-1", "git_commit": "e72f76d0aa", "generator_md5": "99b2"},
    ],
}


def test_seeds_of_this_configuration_are_tabulated_with_their_mean_and_sd(raw_params):
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY, SEEDS)
    assert "| **advnets: 2 seeds (0, 1), mean ± sd across seeds** | **222.5 ± 3.5** |" in text
    assert "| 1 | 225.0 ± 2.2 | 240 | `def` | seed-1 | e72f76d | `99b2` |" in text
    assert "Mean over 2 seed(s): 222.5, sd 3.5." in text


def test_without_a_summary_of_this_configuration_the_report_says_how_to_make_one(raw_params):
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY, None)
    assert "mean ± sd across seeds" not in text and "`advnets seeds`" in text


def _variant(changes, score, epoch):
    seed = {"seed": 0, "test_ll_mean": score, "selected_epoch": epoch, "git_commit": "4376b09aa"}
    return {"changes": changes, "n_seeds": 1, "test_ll_mean": score, "test_ll_sd": None,
            "valid_ll_at": {"50": score - 40}, "seeds": [seed]}


def test_variants_are_tabulated_with_the_best_figure_of_the_papers_configuration(raw_params):
    variants = {"variants": [
        _variant({}, 182.0, 245),
        _variant({"train.update": "alternating"}, 215.0, 215),  # better, but not the paper's configuration
        _variant({"train.epochs": "1000"}, 209.5, 805),
    ]}
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY, SEEDS, variants)
    assert "## Variants: what moves the score" in text
    assert "Best figure of the paper's configuration" in text
    assert "**209.5** (`train.epochs=1000`; 1 seed; selected epoch 805), against the paper's 225 ± 2." in text
    assert "| `train.update=alternating` | 1 | 215.0 | – | 215 | – | 175.0 |" in text  # no D(G(z)) logged: D won "–"
    # the paper's decay, 500 steps an epoch: 1 - 1.000004^-(500 e)
    assert "of that sum, a run has taken 39.3% by epoch 250, 63.2% by epoch 500, 86.5% by epoch 1,000 and 98.2% by epoch 2,000." in text
    assert "after epoch 2,000 rides on the last 1.8%" in text
    assert "[figures/variants.png](../figures/variants.png)" in text


def test_without_a_decaying_rate_the_report_states_no_share_of_its_sum(raw_params):
    raw_params["train"]["lr_decay"] = 1.0
    variants = {"variants": [_variant({"train.epochs": "1000"}, 209.5, 805)]}
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY, SEEDS, variants)
    assert "**209.5**" in text and "of that sum" not in text


def test_without_variants_of_this_configuration_the_report_says_how_to_make_them(raw_params):
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY, SEEDS, None)
    assert "Best figure" not in text and "run `advnets variants`, then `dvc repro`" in text


def _paper_spent(epoch):  # the paper's schedule, 500 steps an epoch
    return 1 - 1.000004 ** -(500 * epoch)


def _long_run(seed, selected_epoch, test, score, last=2000, every=5):
    curve = [[e, score(_paper_spent(e))] for e in range(every, last + 1, every)]
    return {"seed": seed, "test_ll_mean": test, "selected_epoch": selected_epoch, "git_commit": "27f50bdaa",
            "valid_curve": curve}


def _long_variant(*seeds):
    row = _variant({"train.epochs": "2000"}, 221.5, 2000)
    row.update(n_seeds=len(seeds), seeds=list(seeds))
    return {"variants": [row]}


def test_long_runs_of_the_best_figure_are_carried_to_the_end_of_the_decay(raw_params):
    def bending(share):  # a parabola: the parabola fits it exactly, a straight line falls short
        return 100 + 80 * share + 300 * share**2

    def parabola_rise(epoch):
        x = _paper_spent(epoch)
        return 80 * (1 - x) + 300 * (1 - x**2)

    variants = _long_variant(_long_run(0, 1500, 221.0, bending), _long_run(1, 2000, 222.0, bending))
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY, SEEDS, variants)
    assert "the runs (seeds 0 and 1) ended at epoch 2,000, having taken 98.2% of the learning rate's sum" in text
    rises = parabola_rise(1500), parabola_rise(2000)  # 11.0 and 6.0: the selected epochs are apart
    assert f"and a parabola {rises[0]:.1f} and {rises[1]:.1f}. Added to the test scores" in text
    ends = 221.0 + rises[0], 222.0 + rises[1]
    assert f"{ends[0]:.1f} and {ends[1]:.1f} (mean {sum(ends) / 2:.1f}) by the parabola, against the paper's 225" in text
    assert "and the parabola +0.0 and +0.0 from their mean score" in text
    assert "the straight line landed -" in text  # short of a curve that bends upward


def test_runs_of_different_lengths_say_where_each_ended(raw_params):
    line = lambda share: 100 + 80 * share  # noqa: E731
    variants = _long_variant(_long_run(0, 1990, 221.0, line), _long_run(1, 1900, 222.0, line, last=1900))
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY, SEEDS, variants)
    assert "ended at epoch 2,000 (seed 0) and epoch 1,900 (seed 1), having taken 98.2% and 97.8%" in text
    assert "the straight line landed +0.0 and +0.0 and the parabola +0.0 and +0.0" in text


@pytest.mark.parametrize(
    "why, seed",
    [
        ("86.5% of the sum: too far to carry", _long_run(0, 975, 214.0, lambda share: 100 + 80 * share, last=1000)),
        ("selected before the fitted half", _long_run(0, 900, 221.0, lambda share: 100 + 80 * share)),
        ("too few scored epochs for a parabola", _long_run(0, 2000, 221.0, lambda share: 100 + 80 * share, every=250)),
    ],
)
def test_runs_the_fits_cannot_carry_get_no_estimate(raw_params, why, seed):
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY, SEEDS, _long_variant(seed))
    assert "**221.5**" in text and "Where it heads" not in text, why


def test_a_run_scored_every_250_epochs_has_enough_for_a_line_but_not_for_a_parabola():
    """The last case above: both straight-line fits go through, and the parabola is what refuses."""
    curve = _long_run(0, 2000, 221.0, lambda share: 100 + 80 * share, every=250)["valid_curve"]
    assert rise_to_schedule_end(curve, _paper_spent, 2000, degree=1) > 0
    assert foresight_error(curve, _paper_spent, degree=1) == pytest.approx(0, abs=1e-6)
    assert rise_to_schedule_end(curve, _paper_spent, 2000, degree=2) > 0  # 5 points in the second half
    with pytest.raises(ValueError, match="degree-2 fit needs 4 scored epochs between 500 and 1000, got 3"):
        foresight_error(curve, _paper_spent, degree=2)


def test_the_best_figure_of_several_seeds_is_their_mean(raw_params):
    row = _variant({"train.epochs": "1000"}, 212.0, 975)
    row.update(n_seeds=2, seeds=[*row["seeds"], {**row["seeds"][0], "seed": 1, "selected_epoch": 990}])
    text = results_markdown(validate(raw_params), TRAIN, PARZEN, TOY, SEEDS, {"variants": [row]})
    assert "**212.0** (`train.epochs=1000`; 2 seeds, mean; selected epochs 975, 990)" in text
