"""One router per resource: bundles (uploads), runs, tables, compare, health, and the pages."""
