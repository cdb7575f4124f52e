"""inline-ips: an inline intrusion prevention system for Linux routers.

Packets flow source -> decode -> flow -> detect -> verdict/respond -> output.
Only ``source``, ``respond`` and ``output`` touch the outside world; decode,
flow and detect are pure functions of (packet bytes, flow state, clock).
"""

__version__ = "0.1.0"
