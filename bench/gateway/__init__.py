"""Gateway benchmarks (performance reference B3, B4, B5): direct vs this gateway vs nginx (vs LiteLLM).

Run: `.venv/bin/python -m bench.gateway [--quick] [--skip-real]`. Not part of the pytest suite.
"""
