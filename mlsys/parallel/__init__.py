"""Parallel training on real processes: tensor, pipeline, ZeRO, hybrid, sharded parameter server."""
