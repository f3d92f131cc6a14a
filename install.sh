#!/usr/bin/env bash
# Installs Trunkline. Safe to run again: the binary and the systemd unit are replaced, an existing
# config file is never touched.
#
#   ./install.sh                          # build, install to /usr/local, config in /etc/trunkline
#   ./install.sh --prefix "$HOME/.local"  # non-root: config in $HOME/.local/etc/trunkline
#   ./install.sh --binary dist/trunkline  # install an already built binary
#
# Options:
#   --prefix DIR       install root; the binary goes to DIR/bin (default /usr/local)
#   --binary FILE      use this built binary instead of running `make build`
#   --config-dir DIR   where config.yaml lives (default /etc/trunkline, or PREFIX/etc/trunkline
#                      when --prefix is given)
#   --unit-dir DIR     write the systemd unit here even without a running systemd
#                      (default /etc/systemd/system when systemd is running and we are root)
#   --data-dir DIR     database directory used by the unit (default /var/lib/trunkline)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
prefix="/usr/local"
prefix_given=0
binary=""
config_dir=""
unit_dir=""
data_dir="/var/lib/trunkline"

die() { echo "install.sh: $*" >&2; exit 1; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) need_value "$@"; prefix="$2"; prefix_given=1; shift 2 ;;
    --binary) need_value "$@"; binary="$2"; shift 2 ;;
    --config-dir) need_value "$@"; config_dir="$2"; shift 2 ;;
    --unit-dir) need_value "$@"; unit_dir="$2"; shift 2 ;;
    --data-dir) need_value "$@"; data_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

if [ -z "$config_dir" ]; then
  if [ "$prefix_given" -eq 1 ]; then config_dir="$prefix/etc/trunkline"; else config_dir="/etc/trunkline"; fi
fi

if [ -z "$binary" ]; then
  echo "building dist/trunkline"
  make -C "$here" build >/dev/null
  binary="$here/dist/trunkline"
fi
[ -f "$binary" ] || die "binary $binary not found"
"$binary" --version >/dev/null || die "$binary does not run"

# The binary: written beside the target and renamed, so a running service keeps its old inode.
install -d "$prefix/bin"
install -m 0755 "$binary" "$prefix/bin/.trunkline.new"
mv -f "$prefix/bin/.trunkline.new" "$prefix/bin/trunkline"
echo "installed $prefix/bin/trunkline ($("$prefix/bin/trunkline" --version))"

# The config: from the example, only when there is none yet. It holds secrets: not world-readable.
install -d -m 0755 "$config_dir"
config="$config_dir/config.yaml"
if [ -e "$config" ]; then
  echo "kept existing $config"
else
  install -m 0640 "$here/config.example.yaml" "$config"
  echo "wrote $config from config.example.yaml — set adminToken (or TRUNKLINE_ADMIN_TOKEN) before exposing the API"
fi

systemd_running=0
[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && systemd_running=1
if [ -z "$unit_dir" ] && [ "$systemd_running" -eq 1 ] && [ "$(id -u)" -eq 0 ]; then
  unit_dir="/etc/systemd/system"
fi

if [ -n "$unit_dir" ]; then
  if [ "$(id -u)" -eq 0 ] && [ "$systemd_running" -eq 1 ]; then
    id trunkline >/dev/null 2>&1 || useradd --system --no-create-home --home-dir "$data_dir" --shell /usr/sbin/nologin trunkline
    chgrp trunkline "$config"
  fi
  # systemd creates and owns directories under /var/lib itself; any other one is made here.
  state_directory=""
  case "$data_dir" in
    /var/lib/*) state_directory="StateDirectory=${data_dir#/var/lib/}" ;;
    *) install -d "$data_dir"; [ "$(id -u)" -eq 0 ] && id trunkline >/dev/null 2>&1 && chown trunkline "$data_dir" ;;
  esac
  install -d "$unit_dir"
  cat >"$unit_dir/trunkline.service.new" <<EOF
[Unit]
Description=Trunkline SIP connector
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=trunkline
Group=trunkline
EnvironmentFile=-$config_dir/env
ExecStart=$prefix/bin/trunkline serve --config $config --db $data_dir/trunkline.db
ExecReload=/bin/kill -HUP \$MAINPID
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=2
$state_directory
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=$data_dir

[Install]
WantedBy=multi-user.target
EOF
  mv -f "$unit_dir/trunkline.service.new" "$unit_dir/trunkline.service"
  echo "installed $unit_dir/trunkline.service"
  if [ "$systemd_running" -eq 1 ] && [ "$(id -u)" -eq 0 ] && [ "$unit_dir" = "/etc/systemd/system" ]; then
    systemctl daemon-reload
    echo "start it with: systemctl enable --now trunkline   (reload config: systemctl reload trunkline)"
  fi
else
  echo "no systemd unit installed (systemd not running or not root); run: $prefix/bin/trunkline serve --config $config"
fi
