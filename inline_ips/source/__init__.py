"""Packet sources: where the IP datagrams the engine judges come from."""
