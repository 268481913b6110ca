"""Operating instructflow: CLI, recipe loading, Ray connection, reports and benchmarks."""
