#!/usr/bin/env bash
# Install inline-ips on a Debian 12 / Ubuntu 24.04 router from this source tree, as root:
#  - the Debian packages it needs (only those missing),
#  - a virtualenv in /opt/inline-ips with inline-ips and its C extensions built
#    (rebuilt only when the package sources changed), /usr/local/bin/inline-ips,
#  - the system user and group inline-ips the engine runs as (after its set-up as
#    root), and its log directory /var/log/inline-ips,
#  - /etc/inline-ips/rules.yaml and /etc/inline-ips/inline-ips.env, the logrotate
#    config for the EVE log and a sysctl file that turns on IPv4 forwarding,
#  - the systemd unit inline-ips.service, enabled, and (re)started unless --no-start.
#
# Safe to run again, and that is how to upgrade: files already as they should be
# are left alone (not even rewritten). A config file (rules.yaml, inline-ips.env,
# the logrotate and sysctl files) you changed is never overwritten: the new
# version is written beside it as FILE.dist. The service is restarted only when
# something it uses changed. deploy/uninstall.sh undoes all of this.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: deploy/install.sh [--no-start] [--no-apt]
  --no-start  install and enable the service, but do not start or restart it
  --no-apt    do not install Debian packages; fail if one is missing
EOF
}

START=1
APT=1
while (($#)); do
    case "$1" in
        --no-start) START=0 ;;
        --no-apt) APT=0 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
VENV=/opt/inline-ips
ETC=/etc/inline-ips
STATE=/var/lib/inline-ips
UNIT=/usr/local/lib/systemd/system/inline-ips.service
PYTHON=/usr/bin/python3 # Debian's, whatever python3 comes first on PATH
SVC_USER=inline-ips
export DEBIAN_FRONTEND=noninteractive
umask 022

say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root"
[[ -f "$SRC/setup.cfg" && -d "$SRC/inline_ips" ]] || die "$SRC is not an inline-ips source tree"

# python3-venv, python3-dev, build-essential, libnetfilter-queue-dev: the virtualenv,
# the C extensions and NetfilterQueue (built from source); iptables, ipset: the rules
# the engine installs (python-iptables loads libiptc from the iptables package);
# logrotate: rotates the EVE log.
PACKAGES=(python3 python3-venv python3-dev build-essential libnetfilter-queue-dev iptables ipset logrotate)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    ((APT)) || die "missing Debian packages (--no-apt given): ${missing[*]}"
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "Debian packages present: ${PACKAGES[*]}"
fi

# Directories this script creates are listed in $STATE/dirs, so uninstall.sh
# removes exactly those (and no directory that was there before).
if [[ ! -d "$STATE" ]]; then
    mkdir -p "$STATE"
    echo "$STATE" >"$STATE/dirs"
fi
[[ -e "$STATE/dirs" ]] || : >"$STATE/dirs"
make_dir() { # make_dir DIR MODE OWNER GROUP
    local d=$1 p=$1
    local created=()
    while [[ ! -d "$p" ]]; do # $d and its missing ancestors, outermost first
        created=("$p" "${created[@]}")
        p=$(dirname "$p")
    done
    if ((${#created[@]})); then
        mkdir -p "$d"
        for p in "${created[@]}"; do
            grep -qxF "$p" "$STATE/dirs" || echo "$p" >>"$STATE/dirs"
        done
        say "created $d"
    fi
    [[ $(stat -c '%a %U:%G' "$d") == "${2#0} $3:$4" ]] || { chmod "$2" "$d"; chown "$3:$4" "$d"; }
}

# -- the service user ----------------------------------------------------------------
if ! getent group "$SVC_USER" >/dev/null; then
    groupadd --system "$SVC_USER"
    say "created group $SVC_USER"
fi
if ! getent passwd "$SVC_USER" >/dev/null; then
    useradd --system --gid "$SVC_USER" --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin --comment "inline-ips engine" "$SVC_USER"
    say "created system user $SVC_USER"
fi

# -- the virtualenv --------------------------------------------------------------------
# What pip builds the package from; a change to any of these files means a reinstall.
package_files() {
    (cd "$SRC" && find setup.py setup.cfg README.md inline_ips -type f \
        ! -name '*.so' ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z)
}
source_hash=$( (cd "$SRC" && package_files | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
stamp="$VENV/.installed-from"
changed=0
if [[ -x "$VENV/bin/inline-ips" && -f "$stamp" && $(cat "$stamp") == "$source_hash" ]]; then
    say "$VENV is up to date ($("$VENV/bin/inline-ips" --version))"
else
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # Built from a copy: pip's in-tree build would write build/ and *.egg-info into
    # the source tree (a read-only or synced folder, in Vagrant).
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    (cd "$SRC" && package_files | tar --null -T - -cf -) | tar -C "$build/" -xf -
    say "building inline-ips from $SRC (with its C extensions)"
    "$VENV/bin/pip" wheel -q --disable-pip-version-check --no-cache-dir --use-pep517 --no-deps -w "$build/dist" "$build"
    wheel=$(echo "$build"/dist/inline_ips-*.whl)
    say "installing $(basename "$wheel") and its dependencies into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-cache-dir --use-pep517 "${wheel}[live]"
    # Same version number, new sources (an upgrade from a working tree): pip keeps the
    # installed copy unless told, so the package itself is always reinstalled.
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-cache-dir --force-reinstall --no-deps "$wheel"
    "$VENV/bin/python" -c 'import inline_ips.decode._fastdecode, inline_ips.source._nfqloop' \
        || die "the C extensions were not built (see pip's output above)"
    echo "$source_hash" >"$stamp"
    changed=1
    say "installed $("$VENV/bin/inline-ips" --version)"
fi
if [[ $(readlink /usr/local/bin/inline-ips 2>/dev/null) != "$VENV/bin/inline-ips" ]]; then
    ln -sfn "$VENV/bin/inline-ips" /usr/local/bin/inline-ips
    say "linked /usr/local/bin/inline-ips -> $VENV/bin/inline-ips"
fi

# -- files -------------------------------------------------------------------------------
# Each sets WROTE=1 when it changed the file, 0 otherwise. (Not an exit status: errexit
# is off inside a function whose status is tested, and a failed write must stop us.)
WROTE=0

# A file of ours that is not configuration: replaced whenever it differs.
install_file() { # install_file SRC DEST MODE
    WROTE=0
    cmp -s "$1" "$2" && [[ $(stat -c '%a %U:%G' "$2") == "${3#0} root:root" ]] && return
    install -m "$3" -o root -g root "$1" "$2.new"
    mv -f "$2.new" "$2"
    WROTE=1
    say "wrote $2"
}

# A configuration file, kept when you changed it. $STATE/conffiles records the
# checksum of the version this script last installed at each path: a file still
# matching it is ours to upgrade; anything else is yours.
[[ -e "$STATE/conffiles" ]] || : >"$STATE/conffiles"
recorded() { awk -v p="$1" '$2 == p { print $1 }' "$STATE/conffiles"; }
record() { # record SUM PATH
    { awk -v p="$2" '$2 != p' "$STATE/conffiles"; echo "$1 $2"; } | LC_ALL=C sort -k2 >"$STATE/conffiles.new"
    if cmp -s "$STATE/conffiles.new" "$STATE/conffiles"; then
        rm -f "$STATE/conffiles.new"
    else
        mv -f "$STATE/conffiles.new" "$STATE/conffiles"
    fi
}
install_conffile() { # install_conffile SRC DEST MODE GROUP
    local src=$1 dest=$2 mode=$3 group=$4 new cur
    WROTE=0
    new=$(sha256sum <"$src" | cut -d' ' -f1)
    if [[ -f "$dest" ]]; then
        cur=$(sha256sum <"$dest" | cut -d' ' -f1)
        if [[ "$cur" == "$new" ]]; then
            record "$new" "$dest"
            if [[ -f "$dest.dist" ]] && cmp -s "$src" "$dest.dist"; then
                rm -f "$dest.dist"
            fi
            return
        fi
        if [[ "$cur" != "$(recorded "$dest")" ]]; then
            # Yours. A version other than the one you started from goes beside it.
            if [[ "$new" != "$(recorded "$dest")" ]] && ! cmp -s "$src" "$dest.dist"; then
                install -m "$mode" -o root -g "$group" "$src" "$dest.dist"
                record "$new" "$dest"
                say "kept $dest (changed by you); the new version is $dest.dist"
            else
                say "kept $dest (changed by you)"
            fi
            return
        fi
    fi
    install -m "$mode" -o root -g "$group" "$src" "$dest.new"
    mv -f "$dest.new" "$dest"
    record "$new" "$dest"
    WROTE=1
    say "wrote $dest"
}

make_dir "$ETC" 0750 root "$SVC_USER"
# The EVE log's directory belongs to the service user: the engine, unprivileged after
# its set-up, creates a new eve.json there when logrotate has moved the old one away.
make_dir /var/log/inline-ips 0750 "$SVC_USER" "$SVC_USER"
install_conffile "$SRC/rules.yaml" "$ETC/rules.yaml" 0640 "$SVC_USER"
((WROTE)) && changed=1
install_conffile "$SRC/deploy/etc/inline-ips.env" "$ETC/inline-ips.env" 0640 "$SVC_USER"
((WROTE)) && changed=1
install_conffile "$SRC/deploy/etc/logrotate.conf" /etc/logrotate.d/inline-ips 0644 root
install_conffile "$SRC/deploy/etc/sysctl.conf" /etc/sysctl.d/90-inline-ips.conf 0644 root
make_dir "$(dirname "$UNIT")" 0755 root root
install_file "$SRC/deploy/systemd/inline-ips.service" "$UNIT" 0644
unit_changed=$WROTE
((WROTE)) && changed=1

# Forwarding on now, not only from the next boot.
if sysctl -q -p /etc/sysctl.d/90-inline-ips.conf >/dev/null 2>&1; then
    say "IPv4 forwarding is on (net.ipv4.ip_forward = $(sysctl -n net.ipv4.ip_forward))"
else
    say "warning: could not apply /etc/sysctl.d/90-inline-ips.conf now; it applies at boot" >&2
fi

if ! "$VENV/bin/inline-ips" check-rules "$ETC/rules.yaml" >/dev/null; then
    "$VENV/bin/inline-ips" check-rules "$ETC/rules.yaml" || true
    die "$ETC/rules.yaml has errors (above): fix it, then run this again; the service was not (re)started"
fi
say "$ETC/rules.yaml is valid"

# -- the service ---------------------------------------------------------------------------
if [[ -d /run/systemd/system ]]; then # systemd is running (sd_booted)
    ((unit_changed)) && systemctl daemon-reload
    if ! systemctl is-enabled --quiet inline-ips.service; then
        systemctl enable --quiet inline-ips.service
        say "enabled inline-ips.service"
    fi
    if ((!START)); then
        say "not starting inline-ips.service (--no-start): systemctl start inline-ips"
    elif ! systemctl is-active --quiet inline-ips.service; then
        systemctl start inline-ips.service
        say "started inline-ips.service"
    elif ((changed)); then
        systemctl restart inline-ips.service
        say "restarted inline-ips.service (something it uses changed)"
    else
        say "inline-ips.service is running and nothing changed"
    fi
else
    # A chroot, a container, an image being built: enable it for the next boot offline.
    if [[ ! -L /etc/systemd/system/multi-user.target.wants/inline-ips.service ]]; then
        systemctl --root=/ enable --quiet inline-ips.service
        say "enabled inline-ips.service"
    fi
    say "systemd is not running here: inline-ips.service starts at the next boot"
fi
say "done: config in $ETC, EVE log /var/log/inline-ips/eve.json, metrics http://127.0.0.1:9108/metrics"
