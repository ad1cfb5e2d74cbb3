"""Storage: Delta writes with explicit layout, escaped predicates, and the lake's own files."""
