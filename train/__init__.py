"""Training recipes (SFT, preference optimisation, RL) fed by the data engine's shards."""
