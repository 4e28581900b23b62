"""dlq-tui: see and triage a PostgreSQL dead-letter queue from a terminal."""

__version__ = "0.1.0"
