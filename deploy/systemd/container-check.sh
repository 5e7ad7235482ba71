#!/usr/bin/env bash
# Run deploy/systemd/edge-asr.service under a real systemd (as PID 1 in a privileged Debian 12
# container), installed by deploy/install-pi.sh, and check what static checks cannot: the
# hardened unit starts (Type=notify: READY), stays up past several watchdog periods, keeps its
# state in /var/lib/private/edge-asr (DynamicUser + StateDirectory), and publishes to an
# authenticated Mosquitto with the password passed as a credential (LoadCredential=).
# No sound card here: a drop-in points the daemon at a long WAV file played in real time.
#
#   sudo deploy/systemd/container-check.sh      (needs dockerd and the base image that
#                                                docker/arm64/build-local.sh amd64 makes)
# EDGE_ASR_REPO: the source tree to install (default: this one).
set -euo pipefail

REPO=${EDGE_ASR_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WORK=${EDGE_ASR_BUILD_DIR:-/var/tmp/edge-asr-build}/systemd-check
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker || echo docker)}
BASE=edge-asr-base:bookworm-amd64
IMAGE=edge-asr-check/systemd:local
NAME=edge-asr-systemd-check
export DOCKER_BUILDKIT=1

die() { printf 'systemd-check: %s\n' "$*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || die "run as root"
"$DOCKER" image inspect "$BASE" >/dev/null 2>&1 || die "no $BASE: run docker/arm64/build-local.sh amd64 first"

rm -rf "$WORK" && mkdir -p "$WORK/context"
cleanup() { "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

log "image: Debian 12 + systemd + mosquitto, edge-asr installed by deploy/install-pi.sh"
tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./work --exclude='*cache*' \
  -cf "$WORK/context/src.tar" .
sox "$REPO/docker/arm64/samples/set-a-timer-for-ten-minutes.wav" "$WORK/context/long.wav" \
  pad 0 2 repeat 40
cat >"$WORK/context/Dockerfile" <<EOF
FROM $BASE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      systemd systemd-sysv dbus mosquitto mosquitto-clients && rm -rf /var/lib/apt/lists/*
COPY src.tar /tmp/
COPY long.wav /usr/share/edge-asr-check/long.wav
RUN --mount=type=secret,id=ca mkdir /tmp/src && tar -C /tmp/src -xf /tmp/src.tar \\
 && PIP_CERT=/run/secrets/ca /tmp/src/deploy/install-pi.sh --no-start \\
 && rm -rf /tmp/src /tmp/src.tar
RUN printf 'per_listener_settings false\nlistener 1883 127.0.0.1\nallow_anonymous false\npassword_file /etc/mosquitto/passwd\n' \\
      >/etc/mosquitto/conf.d/check.conf \\
 && mosquitto_passwd -c -b /etc/mosquitto/passwd edge-asr check-password \\
 && chown mosquitto /etc/mosquitto/passwd && chmod 0600 /etc/mosquitto/passwd \\
 && printf 'check-password\n' >/etc/edge-asr/mqtt-password \\
 && sed -i 's/^  # username: edge-asr/  username: edge-asr/; s/^site_id: default/site_id: systemd-check/' \\
      /etc/edge-asr/config.yaml \\
 && mkdir -p /etc/systemd/system/edge-asr.service.d \\
 && install -d /etc/edge-asr-check && printf 'check-password\n' >/etc/edge-asr-check/mqtt-password \\
 && chmod 0644 /etc/edge-asr-check/mqtt-password \\
 && printf '[Unit]\nAfter=mosquitto.service\n[Service]\nEnvironment=EDGE_ASR_AUDIO__SOURCE=file:/usr/share/edge-asr-check/long.wav\n' \\
      >/etc/systemd/system/edge-asr.service.d/check.conf \\
 && printf '[Service]\nLoadCredential=\nEnvironment=EDGE_ASR_MQTT__PASSWORD_FILE=/etc/edge-asr-check/mqtt-password\n' \\
      >/etc/systemd/system/edge-asr.service.d/no-credentials.conf
CMD ["/sbin/init"]
EOF
"$DOCKER" build --network host --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
  -t "$IMAGE" "$WORK/context" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; die "image build failed"; }
grep -E 'settings are valid|Overall exposure|Created symlink' "$WORK/build.log" | sed 's/^#[0-9]* [0-9.]* //' >&2 || true

log "boot systemd"
# Not --privileged: this sandbox withholds CAP_SYS_RESOURCE, which --privileged insists on.
"$DOCKER" run -d --name "$NAME" --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
  --security-opt apparmor=unconfined --device-cgroup-rule "a *:* rwm" --network none --tmpfs /run --tmpfs /run/lock \
  -v /sys/fs/cgroup:/sys/fs/cgroup "$IMAGE" >/dev/null
sub() { "$DOCKER" exec "$NAME" "$@"; }
for _ in $(seq 60); do
  state=$(sub systemctl is-system-running 2>/dev/null || true)
  case $state in running|degraded) break ;; esac
  sleep 1
done
echo "system: $state" >&2
# systemd credentials cannot be read inside this Docker (even a minimal unit with User=nobody
# and LoadCredential= gets "Permission denied": the credential mount does not propagate into
# the unit's namespace here). If so, the drop-in no-credentials.conf hands the password over
# as a readable file instead; otherwise it is removed and LoadCredential= itself is checked.
# shellcheck disable=SC2016  # expanded by the unit's shell
if sub systemd-run -q --wait --pipe -p User=nobody -p LoadCredential=x:/etc/edge-asr/mqtt-password \
     sh -c 'cat "$CREDENTIALS_DIRECTORY/x"' >/dev/null 2>&1; then
  sub rm /etc/systemd/system/edge-asr.service.d/no-credentials.conf
  sub systemctl daemon-reload
  echo "LoadCredential= works here: checked as shipped" >&2
  password_via="the LoadCredential= credential"
else
  echo "LoadCredential= unreadable in this container (environment, not the unit): password via a file" >&2
  password_via="a password file (LoadCredential= unusable in this container)"
fi
sub systemctl start edge-asr.service || true
sub timeout 90 mosquitto_sub -h 127.0.0.1 -u edge-asr -P check-password -t 'edge-asr/#' -v -W 85 \
  >"$WORK/mqtt.log" 2>&1 || true
sleep 1
sub systemctl status --no-pager edge-asr.service >"$WORK/status.txt" 2>&1 || true
sub journalctl -u edge-asr --no-pager >"$WORK/journal.txt" 2>&1 || true
sed -n '1,12p' "$WORK/status.txt" >&2
echo "MQTT messages: $(wc -l <"$WORK/mqtt.log"); transcripts: $(grep -c '/transcript ' "$WORK/mqtt.log" || true)" >&2
grep -m1 '/transcript ' "$WORK/mqtt.log" >&2 || true

active=$(sub systemctl is-active edge-asr.service || true)
[ "$active" = active ] || { tail -30 "$WORK/journal.txt"; die "edge-asr.service is $active"; }
grep -q 'Watchdog timeout' "$WORK/journal.txt" && die "the watchdog fired"
grep -q '/transcript ' "$WORK/mqtt.log" || { tail -30 "$WORK/journal.txt"; die "no transcript reached MQTT"; }
sub sh -c 'ls -la /var/lib/private/edge-asr/ && test -d /var/lib/private/edge-asr' >&2 \
  || die "no state in /var/lib/private/edge-asr"
sub systemd-analyze security --no-pager edge-asr.service | tail -1 >&2
echo "systemd-check: passed (Type=notify ready, watchdog quiet for 85 s, state dir, MQTT auth with $password_via)"
