"""Helpers for scripts/benchmark.py (issue 6): processes, HTTP load, the 1.1.1 recipe."""
