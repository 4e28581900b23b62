"""Benchmarks of dlq-tui: `python -m bench --help`; results and how to read them in BENCHMARKS.md."""
