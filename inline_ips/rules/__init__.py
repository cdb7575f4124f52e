"""Rule sets: the data model, the rules.yaml loader and the address/port syntax."""
