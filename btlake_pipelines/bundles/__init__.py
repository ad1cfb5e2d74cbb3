"""Reading bundles: files into Arrow, timestamps to UTC, rows to the lake's types."""
