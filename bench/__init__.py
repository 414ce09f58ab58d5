"""Benchmarks, each runnable as ``python -m bench.<topic>``; results go to ``bench/results/``."""
