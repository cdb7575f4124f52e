"""The kernel side of inline mode: iptables chains, NFQUEUE rules and ipsets that inline-ips owns."""
