"""Benchmarks: ``python -m bench.<topic>``; results land in ``bench/results/`` (not committed)."""
