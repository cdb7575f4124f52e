#!/usr/bin/env bash
# Vagrant provisioning of the router VM (as root): inline-ips from the synced tree
# (/vagrant) with deploy/install.sh, Debian's Prometheus scraping it with the rules in
# deploy/prometheus/, and Grafana (from Grafana's apt repository) with the datasource
# and dashboard in deploy/grafana/. Safe to run again (vagrant provision router).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SRC=${1:-/vagrant}
say() { echo "router: $*"; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

say "installing inline-ips from $SRC"
apt-get update -qq
bash "$SRC/deploy/install.sh"

# -- Prometheus ------------------------------------------------------------------------
if ! installed prometheus; then
    say "installing prometheus"
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
changed=0
for f in prometheus.yml inline-ips.rules.yml; do
    if ! cmp -s "$SRC/deploy/prometheus/$f" "/etc/prometheus/$f"; then
        install -m 0644 "$SRC/deploy/prometheus/$f" "/etc/prometheus/$f"
        changed=1
    fi
done
promtool check config /etc/prometheus/prometheus.yml >/dev/null
if ((changed)); then
    systemctl restart prometheus.service
    say "prometheus scrapes inline-ips (127.0.0.1:9108) with deploy/prometheus/"
fi

# -- Grafana -----------------------------------------------------------------------------
if ! installed grafana; then
    say "installing grafana from apt.grafana.com"
    apt-get install -y -qq --no-install-recommends ca-certificates curl gnupg >/dev/null
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL https://apt.grafana.com/gpg.key | gpg --dearmor --yes -o /etc/apt/keyrings/grafana.gpg
    echo "deb [signed-by=/etc/apt/keyrings/grafana.gpg] https://apt.grafana.com stable main" \
        >/etc/apt/sources.list.d/grafana.list
    apt-get update -qq
    apt-get install -y -qq grafana >/dev/null
fi
install -m 0644 "$SRC/deploy/grafana/provisioning/datasources/inline-ips.yml" \
    /etc/grafana/provisioning/datasources/inline-ips.yml
install -m 0644 "$SRC/deploy/grafana/provisioning/dashboards/inline-ips.yml" \
    /etc/grafana/provisioning/dashboards/inline-ips.yml
# The path deploy/grafana/provisioning/dashboards/inline-ips.yml names.
install -d -m 0755 /var/lib/grafana/dashboards/inline-ips
install -m 0644 "$SRC/deploy/grafana/inline-ips-dashboard.json" \
    /var/lib/grafana/dashboards/inline-ips/inline-ips-dashboard.json
systemctl enable --quiet grafana-server.service
systemctl restart grafana-server.service

for _ in $(seq 60); do
    curl -fsS http://127.0.0.1:9108/metrics 2>/dev/null | grep -q '^inline_ips_info' && break
    sleep 1
done
systemctl is-active --quiet inline-ips.service || { systemctl status inline-ips.service; exit 1; }
say "inline-ips is running: $(inline-ips --version); systemctl status inline-ips"
say "Grafana: http://127.0.0.1:3000/d/inline-ips (admin / admin), Prometheus: http://127.0.0.1:9090"
