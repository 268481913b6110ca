"""instructflow's data engine: readers, converters, stages and the plan that chains them."""
