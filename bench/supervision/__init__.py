"""Supervision benchmarks (issue 3, "Speed and memory"): see bench/supervision/README.md."""
