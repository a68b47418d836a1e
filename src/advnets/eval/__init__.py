"""Evaluation: the checkpoint selection on validation data and the Parzen scoring protocol."""
