"""Orchestration flows: what the Function App triggers and the CLI run, on the workspace port."""
