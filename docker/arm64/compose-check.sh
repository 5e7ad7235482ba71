#!/usr/bin/env bash
# Run deploy/compose.yaml for real on this host and follow speech from a microphone to MQTT:
# a private PulseAudio server plays the role of the desktop's sound server (its null sink's
# monitor is the "microphone"), the edge-asr-pulse service listens to it through the mounted
# socket, and its transcript must reach an authenticated subscriber through the compose
# Mosquitto; a retained message must survive a broker restart (persistence).
#
#   sudo docker/arm64/compose-check.sh          (after docker/arm64/build-local.sh amd64)
#
# No registry: Mosquitto runs from a local image of Debian's mosquitto package (same config
# file and paths as eclipse-mosquitto), edge-asr from the image build-local.sh made.
# Environment: EDGE_ASR_IMAGE (default edge-asr:local-amd64), EDGE_ASR_BUILD_DIR, EXPECTED_TEXT.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${EDGE_ASR_BUILD_DIR:-/var/tmp/edge-asr-build}/compose-check
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker || echo docker)}
IMAGE=${EDGE_ASR_IMAGE:-edge-asr:local-amd64}
MOSQUITTO_IMAGE=edge-asr-check/mosquitto:local
EXPECTED_TEXT=${EXPECTED_TEXT-set a timer for ten minutes}
SAMPLE="$REPO/docker/arm64/samples/set-a-timer-for-ten-minutes.wav"
PROJECT=edge-asr-check
export DOCKER_BUILDKIT=1

die() { printf 'compose-check: %s\n' "$*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root"
"$DOCKER" info >/dev/null 2>&1 || die "no Docker daemon answers (docker/arm64/build-local.sh starts one)"
"$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE: run docker/arm64/build-local.sh amd64 first"
"$REPO/deploy/install-deps.sh" docker-compose pulseaudio pulseaudio-utils mosquitto-clients

rm -rf "$WORK" && mkdir -p "$WORK/pulse" && chmod 0755 "$WORK"
PULSE_PID=""
SUB_PID=""
cleanup() {
  [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null
  (cd "$WORK/deploy" 2>/dev/null && docker-compose -p "$PROJECT" --profile pulse down -v >/dev/null 2>&1)
  [ -n "$PULSE_PID" ] && kill "$PULSE_PID" 2>/dev/null
  true
}
trap cleanup EXIT

log "Mosquitto image from Debian's package"
mkdir -p "$WORK/mosquitto-image"
cat >"$WORK/mosquitto-image/Dockerfile" <<'EOF'
FROM edge-asr-base:bookworm-amd64
RUN apt-get update && apt-get install -y --no-install-recommends mosquitto mosquitto-clients \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /mosquitto/config /mosquitto/data
EOF
"$DOCKER" build --network host -q -t "$MOSQUITTO_IMAGE" "$WORK/mosquitto-image" >/dev/null

log "a private PulseAudio server (the host's sound server)"
export XDG_RUNTIME_DIR="$WORK/pulse"
SOCKET="$WORK/pulse/native"
pulseaudio --daemonize=no --system=no --exit-idle-time=-1 -n --use-pid-file=no \
  "--load=module-native-protocol-unix auth-anonymous=1 socket=$SOCKET" \
  "--load=module-null-sink sink_name=vsink format=s16le rate=16000 channels=1" \
  "--load=module-always-sink" >"$WORK/pulseaudio.log" 2>&1 &
PULSE_PID=$!
for _ in $(seq 50); do [ -S "$SOCKET" ] && break; sleep 0.1; done
[ -S "$SOCKET" ] || die "PulseAudio did not start: $(cat "$WORK/pulseaudio.log")"
chmod 0666 "$SOCKET"
export PULSE_SERVER="unix:$SOCKET"
pactl set-default-source vsink.monitor

log "docker-compose up edge-asr-pulse (+ mosquitto)"
cp -r "$REPO/deploy" "$WORK/deploy"
PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$PASSWORD" >"$WORK/deploy/mosquitto/mqtt_password"
chmod 0644 "$WORK/deploy/mosquitto/mqtt_password"
MQTT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MQTT_PORT MOSQUITTO_IMAGE EDGE_ASR_IMAGE="$IMAGE" EDGE_ASR_SITE_ID=compose-check
export PULSE_SOCKET="$SOCKET"
cd "$WORK/deploy"
docker-compose -p "$PROJECT" up -d edge-asr-pulse 2>&1 | tail -5

sub() { mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -u edge-asr -P "$PASSWORD" "$@"; }
if mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '#' -C 1 -W 3 >/dev/null 2>&1; then
  die "the broker accepted an anonymous client"
fi
# Directly, not through sub(): $! must be mosquitto_sub itself for the cleanup to stop it.
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -u edge-asr -P "$PASSWORD" -t 'edge-asr/#' -v -W 300 \
  >"$WORK/mqtt.log" 2>&1 &
SUB_PID=$!

health=""
for _ in $(seq 90); do
  health=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "${PROJECT}_edge-asr-pulse_1" 2>/dev/null || true)
  grep -q '"state": *"online"' "$WORK/mqtt.log" 2>/dev/null && [ "$health" != starting ] && break
  sleep 1
done
echo "edge-asr-pulse: health $health; status: $(grep -m1 '/status ' "$WORK/mqtt.log" || echo none)" >&2

log "speak into the microphone: $SAMPLE"
paplay --device=vsink "$SAMPLE"
for _ in $(seq 60); do grep -q '/transcript ' "$WORK/mqtt.log" && break; sleep 1; done
transcript=$(grep -m1 '/transcript ' "$WORK/mqtt.log" || true)
echo "MQTT: ${transcript:-nothing}" >&2
docker-compose -p "$PROJECT" logs --tail 15 edge-asr-pulse >&2 || true
[ -n "$transcript" ] || die "no transcript reached MQTT"
# Live capture (converted by the sound server, cut by the VAD) is not bit-exact like
# a file: allow one word of difference; this checks the path, the model has its own tests.
python3 - "${transcript#* }" "$EXPECTED_TEXT" <<'EOF' || die "wrong transcript (expected '$EXPECTED_TEXT')"
import json, sys
hyp, ref = json.loads(sys.argv[1])["text"].split(), sys.argv[2].split()
d = list(range(len(hyp) + 1))
for i, r in enumerate(ref, 1):
    prev, d[0] = d[0], i
    for j, h in enumerate(hyp, 1):
        prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
print(f"word errors: {d[-1]}", file=sys.stderr)
sys.exit(0 if d[-1] <= 1 else 1)
EOF
[ "$health" = healthy ] || die "edge-asr-pulse is not healthy ($health)"

log "retained status survives a broker restart"
# edge-asr leaves a retained "offline" status as it stops; only persistence keeps it through
# the broker's restart.
docker-compose -p "$PROJECT" stop edge-asr-pulse >/dev/null 2>&1
docker-compose -p "$PROJECT" restart mosquitto >/dev/null 2>&1
retained=""
for _ in $(seq 30); do
  retained=$(sub -t "edge-asr/compose-check/status" -C 1 -W 2 2>/dev/null || true)
  [ -n "$retained" ] && break
  sleep 1
done
echo "retained status after restart: ${retained:-none}" >&2
[ -n "$retained" ] || die "no retained status after the broker restarted"
echo "compose-check: passed (microphone -> edge-asr-pulse -> Mosquitto with auth -> subscriber)"
