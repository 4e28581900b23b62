"""Benchmarks of dlq-tui (issue 5): `python -m bench --help`; results and how to read them in BENCHMARKS.md."""
