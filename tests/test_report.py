from advnets.params import validate
from advnets.report import results_markdown

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
