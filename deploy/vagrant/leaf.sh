#!/usr/bin/env bash
# Vagrant provisioning of the attacker or the victim VM (as root):
#   leaf.sh ROLE OTHER_NET ROUTER
# routes OTHER_NET (the other side) through the router, now and at every boot;
# the attacker gets its tools (nmap, hping3, curl), the victim a web server on port 80.
# Safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
role=$1 other_net=$2 router=$3
say() { echo "$role: $*"; }

cat >/etc/systemd/system/ips-lab-route.service <<UNIT
[Unit]
Description=Route $other_net through the inline-ips router $router
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip route replace $other_net via $router

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --quiet ips-lab-route.service
systemctl restart ips-lab-route.service
say "route $other_net via $router"

apt-get update -qq
if [[ $role == attacker ]]; then
    apt-get install -y -qq --no-install-recommends nmap hping3 curl >/dev/null
    say "nmap, hping3 and curl installed"
else
    apt-get install -y -qq --no-install-recommends python3 >/dev/null
    install -d -m 0755 /srv/www
    echo "<h1>victim</h1>" >/srv/www/index.html
    cat >/etc/systemd/system/victim-http.service <<'UNIT'
[Unit]
Description=A web server for the attacker to attack
After=network.target

[Service]
ExecStart=/usr/bin/python3 -m http.server 80 --directory /srv/www
DynamicUser=yes
AmbientCapabilities=CAP_NET_BIND_SERVICE

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --quiet --now victim-http.service
    say "web server on port 80"
fi
