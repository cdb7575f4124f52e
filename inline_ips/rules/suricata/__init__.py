"""Suricata and Snort 3 rule files: text -> raw rules -> the engine's frozen rule model."""
