"""Shared test harness: the tiny model, polling with deadlines, free ports, process leak guard."""
