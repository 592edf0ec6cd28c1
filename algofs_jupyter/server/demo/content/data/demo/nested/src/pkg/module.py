"""A tiny package stored in the demo data, to browse nested directories."""

ANSWER = 42
