"""The paper's GAN: nets, update steps and losses, schedules, the trainer and its loop, checkpoints
and sampling. Builds on no other layer of advnets but params, errors, atomic and parzen; imports
neither MLflow, DVC nor plotting."""
