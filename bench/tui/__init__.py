"""Dashboard benchmark: refresh render time and idle CPU with 100 instances (`python -m bench.tui`)."""
