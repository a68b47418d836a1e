"""Reporting: the results markdown, the figures and the where-it-heads estimate, from metrics
files. Imports neither MLflow nor advnets.provenance."""
