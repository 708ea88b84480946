"""Evaluation: metrics, validation experiments, reports."""
