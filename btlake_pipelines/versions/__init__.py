"""Versions: table history, time travel and run comparison."""
