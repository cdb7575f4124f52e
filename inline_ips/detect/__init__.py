"""Detection: pure functions of (packet, flow state, time) that say which rules match."""
