"""Interfaces: the Python API, the CLI and the HTTP API, all thin over the same functions."""
