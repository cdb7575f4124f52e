"""Outputs: how the engine reports what it saw and decided."""
