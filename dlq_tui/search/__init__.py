"""Forensic search: the query language (query.py); its SQL and scan live in dlq_tui/db/search.py."""
