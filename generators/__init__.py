"""Generators of architecture graphs conditioned on task, device and budget."""
