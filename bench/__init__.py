"""Benchmarks (not part of pytest): run each suite with `python -m bench.<suite>` from the repo root."""
