#!/usr/bin/env bash
# Install edge-asr as a systemd service on a Raspberry Pi (Raspberry Pi OS / Debian 12, 64-bit)
# or any Debian-like host with systemd:
#
#   sudo deploy/install-pi.sh                 # from this checkout; enables and starts the unit
#   sudo deploy/install-pi.sh --no-start      # install and enable only
#   sudo deploy/install-pi.sh --source 'edge-asr[systemd]==0.1.0'   # from a package index
#
# Puts a virtualenv in /opt/edge-asr/venv (Python packages pinned as in the container image),
# the unit in /etc/systemd/system/edge-asr.service, settings in /etc/edge-asr/config.yaml and
# the MQTT password in /etc/edge-asr/mqtt-password (root-only; handed to the service as a
# systemd credential). Existing settings and password are kept. Safe to run again to upgrade.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/opt/edge-asr
VENV=$PREFIX/venv
ETC=/etc/edge-asr
UNIT_DIR=/etc/systemd/system
SOURCE="${REPO}[systemd]"
START=1

usage() { sed -n '2,12s/^# \{0,1\}//p' "$0"; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --no-start) START=0 ;;
    --source) SOURCE=${2:?--source needs a value}; shift ;;
    -h|--help) usage ;;
    *) echo "install-pi: unknown option $1" >&2; usage 2 ;;
  esac
  shift
done

[ "$(id -u)" -eq 0 ] || { echo "install-pi: run as root (sudo $0)" >&2; exit 1; }
case $(uname -m) in
  aarch64|x86_64) ;;
  *) echo "install-pi: $(uname -m) is not supported: onnxruntime needs a 64-bit OS (aarch64 or x86_64)" >&2
     exit 1 ;;
esac

echo "== Debian packages"
# PortAudio and libsndfile at run time; systemd-python compiles against libsystemd.
"$REPO/deploy/install-deps.sh" python3 python3-venv python3-dev libportaudio2 libsndfile1 \
  libsystemd-dev pkg-config gcc

echo "== virtualenv $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
# The image's pins (proven on amd64 and arm64) as constraints; onnxruntime >= 1.22 because
# 1.21 dies with SIGILL on the Pi 4's Cortex-A72.
"$VENV/bin/pip" install -q --disable-pip-version-check \
  -c "$REPO/docker/arm64/requirements.txt" "onnxruntime>=1.22" "$SOURCE"
"$VENV/bin/edge-asr" --version

echo "== settings in $ETC"
install -d -m 0755 "$ETC"
if [ ! -e "$ETC/config.yaml" ]; then
  cat >"$ETC/config.yaml" <<'EOF'
# edge-asr settings (see `edge-asr run --example-config` for every key).
# Environment variables EDGE_ASR_<SECTION>__<KEY> (`systemctl edit edge-asr`) win over this file.
site_id: default
audio:
  # A USB microphone missing at boot (or unplugged later) is waited for, not an exit.
  wait_for_device: true
mqtt:
  host: localhost
  port: 1883
  # username: edge-asr
  # The password is the systemd credential "mqtt-password" (/etc/edge-asr/mqtt-password).
  password_file: mqtt-password
EOF
  chmod 0644 "$ETC/config.yaml"
  echo "wrote $ETC/config.yaml"
fi
if [ ! -e "$ETC/mqtt-password" ]; then
  # Empty = no authentication; put the broker password here (one line).
  install -m 0600 /dev/null "$ETC/mqtt-password"
  echo "wrote an empty $ETC/mqtt-password"
fi
"$VENV/bin/edge-asr" run --config "$ETC/config.yaml" --validate-config

echo "== systemd unit"
install -m 0644 "$REPO/deploy/systemd/edge-asr.service" "$UNIT_DIR/edge-asr.service"
# Now that /opt/edge-asr/venv/bin/edge-asr exists, the unit is verified as it will run.
systemd-analyze verify "$UNIT_DIR/edge-asr.service"
systemd-analyze security --offline=true --no-pager "$UNIT_DIR/edge-asr.service" | tail -1

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable edge-asr.service
  if [ "$START" = 1 ]; then
    systemctl restart edge-asr.service
    echo "edge-asr started: journalctl -u edge-asr -f"
  fi
else
  # Not booted with systemd (a chroot or container): enable offline, start on next boot.
  systemctl enable edge-asr.service
  echo "systemd is not running here: the unit is enabled and starts at the next boot"
fi
echo "install-pi: done. Settings: $ETC/config.yaml; status: systemctl status edge-asr"
