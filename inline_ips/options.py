"""Typed, frozen engine options with the defaults an operator would expect.

Options are plain data, built once (from the command line or a test) and
handed to the engine; nothing here reads files or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inline_ips.decode.memcap import DEFAULT_APP_MEMCAP
from inline_ips.detect.bypass import BypassOptions
from inline_ips.flow import FlowOptions

# Where the Prometheus exporter listens unless told otherwise: loopback only,
# so the metrics (which name rules and traffic volumes) are not on the wire.
DEFAULT_METRICS_LISTEN = "127.0.0.1:9108"


@dataclass(frozen=True, slots=True)
class EngineOptions:
    flows: FlowOptions = field(default_factory=FlowOptions)
    # IP fragment reassembly bounds.
    defrag_max_datagrams: int = 1024  # worst case 1024 x 64 KiB of held fragments
    defrag_timeout: float = 30.0
    # Rate trackers: keys kept per rate rule (least recently used evicted beyond it).
    rate_max_keys: int = 100_000
    # In-engine blocklist (the ipset mirror has its own cap). It plays the
    # kernel's part in replay; inline the kernel ipset is the only blocklist, so
    # an operator's `inline-ips block del` takes effect at once.
    blocklist_max: int = 65536
    emulate_blocklist: bool = True
    # Packets too malformed to judge by their flow (no complete IP header, or a
    # TCP/UDP header cut short) are accepted by default (fail open); True drops
    # them. Packets with lesser anomalies (a bad TCP option, a short payload)
    # are judged by the rules either way.
    drop_invalid: bool = False
    # After a drop rule matched, drop the rest of that flow (Suricata does this).
    drop_flow_on_match: bool = True
    # When a clean flow stops being queued (see detect/bypass.py).
    bypass: BypassOptions = field(default_factory=BypassOptions)
    # TCP checksum verification (Suricata's checksum-checks): "none" (inline: the
    # kernel hands over segments whose checksum the NIC fills in later), "all",
    # or "auto" (replay: stop checking after 1000 packets if more than 1 in 10 fail,
    # as for an offloaded capture). A segment that fails is kept out of the stream.
    checksum_checks: str = "none"
    # IPS (inline, or replay as if inline): drop verdicts are carried out. False is
    # Suricata's IDS mode: the same alerts, every packet accepted.
    ips: bool = True
    # Suricata's packet-alert-max: alerts kept per packet (the highest-priority ones).
    max_alerts_per_packet: int = 15
    # threshold / detection_filter entries kept (least recently used evicted beyond it).
    threshold_max_entries: int = 100_000
    # Bytes all flows' HTTP/TLS/DNS parsers may hold together (decode/memcap.py); past it
    # a flow's new bytes are treated as lost (a gap), counted.
    app_memcap: int = DEFAULT_APP_MEMCAP


@dataclass(frozen=True, slots=True)
class PrivilegeOptions:
    """What ``inline-ips run`` gives up once its firewall rules, ports and files are set up."""

    # Drop to this account after set-up, keeping only CAP_NET_ADMIN and CAP_NET_RAW
    # (inline_ips/privilege.py); None: stay as started (root, or systemd's User=).
    user: str | None = None
    # Files the IPS creates are never world-writable (nor world-readable: alerts name hosts).
    umask: int = 0o027
