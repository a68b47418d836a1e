"""Bookkeeping around the numerics: MLflow tracking, the repository's git and DVC state, lineage,
publishing, recording runs made outside the pipeline, and the run queries behind `advnets seeds`
and `advnets variants`. Nothing here changes a result, so no stage depends on it (dvc.yaml)."""
