"""Forests: per-layer training, the packed inference format, tuning."""
