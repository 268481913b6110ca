"""Instruction generation: backends (local transformers, vLLM, OpenAI-compatible HTTP) and the
stages that generate with them (self_instruct, evol_instruct, answer, describe_to_instruction)."""
