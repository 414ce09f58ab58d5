"""Benchmarks: ``python -m bench.<topic>``; results go to ``bench/results/`` (not committed)."""
