"""The lab: a network-namespace testbed (topology, services, real attacks, the demo) and synthetic traffic."""
