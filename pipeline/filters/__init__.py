"""Heuristic quality filters: one filter per module, each with its own drop-reason vocabulary."""
