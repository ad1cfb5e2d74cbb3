"""Query: run search with the predicate language, and slice reads with pruning."""
