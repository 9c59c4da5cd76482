"""PNG figures of a run with matplotlib (the report)."""
