#!/usr/bin/env bash
# Remove what deploy/install.sh installed, as root.
#
# Stops and disables inline-ips.service (its ExecStopPost removes the firewall
# rules; `inline-ips cleanup` runs here too, for an engine started by hand),
# then removes the unit, /usr/local/bin/inline-ips and the virtualenv
# /opt/inline-ips. Like `apt remove`, it keeps the configuration (/etc/inline-ips,
# the logrotate and sysctl files), the EVE logs and the user inline-ips, so a
# later install.sh finds them as you left them. --purge removes those too.
# The Debian packages install.sh added stay (other software may use them).
# Safe to run again.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: deploy/uninstall.sh [--purge]
  --purge  also remove /etc/inline-ips (all of it), /etc/logrotate.d/inline-ips,
           /etc/sysctl.d/90-inline-ips.conf, /var/log/inline-ips, /var/lib/inline-ips
           and the user and group inline-ips
EOF
}

PURGE=0
while (($#)); do
    case "$1" in
        --purge) PURGE=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done

VENV=/opt/inline-ips
STATE=/var/lib/inline-ips
UNIT=/usr/local/lib/systemd/system/inline-ips.service
SVC_USER=inline-ips

say() { echo "uninstall: $*"; }
[[ $(id -u) -eq 0 ]] || { echo "uninstall: run as root" >&2; exit 1; }

remove() { # remove PATH...: files, symlinks or whole directories
    local p
    for p in "$@"; do
        if [[ -e "$p" || -L "$p" ]]; then
            rm -rf -- "$p"
            say "removed $p"
        fi
    done
}

# -- the service and its firewall rules --------------------------------------------
if [[ -d /run/systemd/system ]]; then # systemd is running
    if systemctl cat inline-ips.service >/dev/null 2>&1; then
        # Stopping runs ExecStopPost: `inline-ips cleanup`.
        systemctl disable --now --quiet inline-ips.service
        say "stopped and disabled inline-ips.service"
    fi
elif [[ -L /etc/systemd/system/multi-user.target.wants/inline-ips.service ]]; then
    systemctl --root=/ disable --quiet inline-ips.service
    say "disabled inline-ips.service"
fi
if [[ -x "$VENV/bin/inline-ips" ]]; then
    # Whatever is left (an engine run by hand, a kill -9): every rule, chain and ipset of ours.
    "$VENV/bin/inline-ips" cleanup | sed 's/^/uninstall: cleanup: /'
fi

# -- the program ------------------------------------------------------------------------
remove "$UNIT"
if [[ -d /run/systemd/system ]]; then
    systemctl daemon-reload
fi
if [[ $(readlink /usr/local/bin/inline-ips 2>/dev/null) == "$VENV/bin/inline-ips" ]]; then
    remove /usr/local/bin/inline-ips
fi
remove "$VENV"

# -- configuration, logs, user (--purge) ---------------------------------------------------
if ((PURGE)); then
    remove /etc/inline-ips /etc/logrotate.d/inline-ips /etc/sysctl.d/90-inline-ips.conf \
        /etc/logrotate.d/inline-ips.dist /etc/sysctl.d/90-inline-ips.conf.dist /var/log/inline-ips
    if getent passwd "$SVC_USER" >/dev/null; then
        userdel "$SVC_USER"
        say "removed user $SVC_USER"
    fi
    if getent group "$SVC_USER" >/dev/null; then
        groupdel "$SVC_USER"
        say "removed group $SVC_USER"
    fi
    say "forwarding stays as it is now (net.ipv4.ip_forward = $(sysctl -n net.ipv4.ip_forward 2>/dev/null || echo '?')) until the next boot"
fi

# Directories install.sh created, innermost first, where they are now empty.
if [[ -f "$STATE/dirs" ]]; then
    mapfile -t dirs < <(LC_ALL=C sort -r "$STATE/dirs")
    if ((PURGE)); then
        rm -f "$STATE/dirs" "$STATE/conffiles"
    fi
    for d in "${dirs[@]}"; do
        if [[ -d "$d" && -z $(ls -A "$d") ]] && ! [[ "$d" == "$STATE" && $PURGE -eq 0 ]]; then
            rmdir "$d"
            say "removed $d"
        fi
    done
fi

if ((PURGE)); then
    say "done: inline-ips is gone"
else
    say "done; kept /etc/inline-ips, /etc/logrotate.d/inline-ips, /etc/sysctl.d/90-inline-ips.conf," \
        "/var/log/inline-ips and the user $SVC_USER (--purge removes them)"
fi
