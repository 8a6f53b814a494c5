"""Test suite package, so support code imports as ``tests.support.<module>`` (see tests/conftest.py)."""
