#!/usr/bin/env bash
# Idempotent set-up for a Debian/Ubuntu machine, run as root:
#  - the Debian packages inline-ips needs (only those missing are installed),
#  - a virtualenv in .venv/ at the project root with inline-ips installed
#    in editable mode plus its test tools (only when something changed).
# Safe to run again at any time; prints what it does.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
export DEBIAN_FRONTEND=noninteractive

# build-essential/python3-dev/libnetfilter-queue-dev: NetfilterQueue builds from source.
# iptables/ipset/iproute2/conntrack: the live inline mode; tcpdump: debugging captures.
# hping3 nmap iperf3 curl dnsutils iputils-ping: real traffic and attacks in the lab.
# openssl: the TLS tests make their certificates with it.
# prometheus: promtool checks the scrape config and alert rules (and runs their unit tests);
# the prometheus server evaluates the dashboard's queries and scrapes the exporter in the tests.
# vagrant (validate only), shellcheck, logrotate: tests/deploy checks the Vagrantfile, every
# shell script and the logrotate config; deploy/install.sh runs in a test root made of this system.
# valgrind: bench/instructions.py counts instructions per packet with callgrind.
PACKAGES=(python3 python3-venv python3-dev build-essential libnetfilter-queue-dev
          iptables ipset iproute2 conntrack tcpdump
          hping3 nmap iperf3 curl dnsutils iputils-ping openssl prometheus
          shellcheck vagrant logrotate valgrind)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them first)" >&2
        exit 1
    fi
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's prometheus package starts a server on every interface (:9090). The tests
    # run their own on a namespace's loopback; a newly installed system one is not wanted.
    if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null \
        && systemctl is-enabled --quiet prometheus.service 2>/dev/null; then
        echo "setup: disabling the prometheus.service Debian enabled (only its binaries are needed)"
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: inline-ips needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)" >&2
    exit 1
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when the package metadata or a C extension's source changed since the
# last install (or a built extension is gone, e.g. after git clean).
# The C extensions (inline_ips/**/*.c, listed in setup.py, optional: a machine without a
# compiler still installs and uses the pure-Python fallbacks) are built by the editable
# install itself: setuptools' editable mode compiles them in place, the .so next to its .c
# in the source tree, which is where the editable finder imports inline_ips from (*.so is
# in .gitignore). Nothing rebuilds them when a .c changes, hence the checks below (on a
# machine where one cannot build, that means a reinstall, and a fallback, every run).
stamp="$VENV/.inline-ips-installed"
needs_install() {
    [[ ! -f "$stamp" || setup.cfg -nt "$stamp" || setup.py -nt "$stamp" ]] && return 0
    local c
    while IFS= read -r c; do
        [[ "$c" -nt "$stamp" ]] && return 0
        compgen -G "${c%.c}.cpython-*.so" >/dev/null || return 0
    done < <(find inline_ips -name '*.c')
    return 1
}
if needs_install; then
    echo "setup: installing inline-ips and its dependencies into $VENV (and building its C extensions)"
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[live,dev]"
    touch "$stamp"
fi
echo "setup: ready ($("$VENV/bin/inline-ips" --version))"
