"""Prefect flows: one per pipeline stage plus the whole pipeline. Each composes tasks from ``tasks/``."""
