"""Rewards for RL: instruction-following checks (ifeval), text measurements (text) and the
reward runner."""
