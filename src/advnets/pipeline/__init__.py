"""The stages' bodies: the only code that names the pipeline's files."""
