"""When D has won: it rejects nearly every fake, and in every tracked run that got there G never
recovered (docs/findings.md). The train stage says so; the variants table counts such seeds."""

# Over an epoch, the mean of D(G(z)) below this. Healthy MNIST runs of the paper's configuration
# dip to about 0.04 in their first epochs and settle near 0.43.
D_WON_BELOW = 0.01


def d_has_won(mean_d_fake: float) -> bool:
    return mean_d_fake < D_WON_BELOW
