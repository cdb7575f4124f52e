"""Carrying out verdicts that reach beyond accept/drop: reject replies, rewrites, kernel blocks."""
