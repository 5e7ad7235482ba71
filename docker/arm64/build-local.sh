#!/usr/bin/env bash
# Build the edge-asr image for linux/amd64 and linux/arm64 on one Debian x86 host, with no
# buildx and no registry, and prove each image: transcribe a bundled sample, run the daemon
# with env + a mounted YAML, check the user, the labels and that no compiler is left, the
# HEALTHCHECK, `edge-asr serve`'s probes and `edge-asr wyoming`'s answer to a Describe.
#
#   sudo docker/arm64/build-local.sh [amd64] [arm64]     (default: both)
#
# Steps: start Debian's dockerd if none answers; register qemu-aarch64 with binfmt_misc; make
# a Debian 12 base per architecture with debootstrap (like debian:bookworm-slim, plus python3
# and its venv module; cached as image edge-asr-base:bookworm-ARCH); build
# docker/arm64/Dockerfile with BASE_IMAGE set to it; run the checks (arm64 under qemu with
# QEMU_CPU=cortex-a72, the Raspberry Pi 4's CPU). Prints a table of image sizes at the end.
#
# Environment: EDGE_ASR_BUILD_DIR (work folder, default /var/tmp/edge-asr-build),
# DEBIAN_MIRROR, REBUILD_BASE=1 (make the bases again), TAG (default edge-asr:local),
# EMULATED_TIMEOUT (seconds per emulated docker run, default 900), EXPECTED_TEXT (of the sample).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${EDGE_ASR_BUILD_DIR:-/var/tmp/edge-asr-build}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
TAG=${TAG:-edge-asr:local}
EMULATED_TIMEOUT=${EMULATED_TIMEOUT:-900}
HOST_CA=/etc/ssl/certs/ca-certificates.crt
SAMPLE=/usr/share/edge-asr/samples/set-a-timer-for-ten-minutes.wav
EXPECTED_TEXT=${EXPECTED_TEXT-set a timer for ten minutes}
# Debian's docker.io client (API 1.41 + BuildKit built in); a newer CLI elsewhere in PATH
# may insist on the buildx plugin, which Debian 12 does not package.
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker || echo docker)}
export DOCKER_BUILDKIT=1

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'build-local: %s\n' "$*" >&2; exit 1; }

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)
for arch in "${arches[@]}"; do
  case $arch in amd64|arm64) ;; *) die "unknown architecture '$arch' (amd64 or arm64)";; esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (dockerd, debootstrap and binfmt_misc need it)"
[ "$(uname -m)" = x86_64 ] || die "this script builds on an x86_64 host"
[ -f "$REPO/edge_asr/models/home-en/model.int8.onnx" ] \
  || die "no built-in model in edge_asr/models/home-en: train or copy it first"
mkdir -p "$WORK"

log "host tools"
"$REPO/deploy/install-deps.sh" docker.io debootstrap qemu-user-static binfmt-support \
  ca-certificates python3 sox

DOCKERD_PID=""
stop_dockerd() {
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
  fi
}
trap stop_dockerd EXIT

if ! "$DOCKER" info >/dev/null 2>&1; then
  log "starting dockerd (log: $WORK/dockerd.log)"
  # No iptables and no bridge: this sandbox allows neither; builds and runs use the host network
  # or none.
  dockerd --iptables=false --bridge=none >"$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
  "$DOCKER" info >/dev/null 2>&1 || die "dockerd did not start; see $WORK/dockerd.log"
fi

if [[ " ${arches[*]} " == *" arm64 "* ]]; then
  log "qemu-aarch64 in binfmt_misc"
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
  # Flag F: the kernel opens the interpreter now, so it also works inside containers.
  grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "qemu-aarch64 is not registered with flag F in binfmt_misc"
fi

make_base() {
  local arch=$1 image="edge-asr-base:$SUITE-$1" root="$WORK/rootfs-$1"
  if [ "${REBUILD_BASE:-0}" != 1 ] \
     && [ "$("$DOCKER" image inspect -f '{{.Architecture}}' "$image" 2>/dev/null)" = "$arch" ]; then
    echo "base $image exists (REBUILD_BASE=1 makes it again)" >&2
    return
  fi
  log "debootstrap $SUITE $arch -> $image"
  rm -rf "$root"
  # minbase + python3 and venv: what python:3.11-slim offers, from Debian's own packages.
  debootstrap --variant=minbase --arch="$arch" --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$root" "$MIRROR" >"$WORK/debootstrap-$arch.log" 2>&1 \
    || die "debootstrap $arch failed; see $WORK/debootstrap-$arch.log"
  # Slim like debian:bookworm-slim: no docs, man pages or translations, now or later.
  cat >"$root/etc/dpkg/dpkg.cfg.d/edge-asr-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/{man,info}/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s-security %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "${MIRROR%/debian}/debian" "$SUITE" >"$root/etc/apt/sources.list"
  # FROM scratch + ADD, built for the target platform: docker 20.10's `import --platform`
  # leaves the architecture at the host's, and BuildKit would then try to pull the base.
  mkdir -p "$WORK/base-$arch"
  tar --numeric-owner -C "$root" -cf "$WORK/base-$arch/rootfs.tar" .
  printf 'FROM scratch\nADD rootfs.tar /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["bash"]\n' \
    >"$WORK/base-$arch/Dockerfile"
  "$DOCKER" build --platform "linux/$arch" -t "$image" "$WORK/base-$arch" >"$WORK/base-$arch.log" 2>&1 \
    || die "base image $arch failed; see $WORK/base-$arch.log"
  rm -f "$WORK/base-$arch/rootfs.tar"
  rm -rf "$root"
}

read -r MODEL_NAME MODEL_VERSION < <(python3 "$REPO/docker/arm64/model-meta.py") || die "cannot read the model's ONNX metadata"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml")
REVISION=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
echo "edge-asr $VERSION ($REVISION), model $MODEL_NAME $MODEL_VERSION" >&2

build() {
  local arch=$1
  log "docker build linux/$arch -> $TAG-$arch"
  local started=$SECONDS
  "$DOCKER" build --network host --platform "linux/$arch" \
    --secret "id=ca,src=$HOST_CA" \
    --build-arg "BASE_IMAGE=edge-asr-base:$SUITE-$arch" \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --build-arg "MODEL_NAME=$MODEL_NAME" --build-arg "MODEL_VERSION=$MODEL_VERSION" \
    --progress plain -f "$REPO/docker/arm64/Dockerfile" -t "$TAG-$arch" "$REPO" \
    >"$WORK/build-$arch.log" 2>&1 || { tail -40 "$WORK/build-$arch.log" >&2; die "build $arch failed"; }
  echo "built in $((SECONDS - started)) s (log: $WORK/build-$arch.log)" >&2
}

# docker run for the image of an architecture; arm64 runs under qemu as a Pi 4's Cortex-A72.
run_in() {
  local arch=$1; shift
  local opts=(--rm --network none --platform "linux/$arch")
  if [ "$arch" = arm64 ]; then
    # onnxruntime can crash reading /sys/devices/system/cpu under qemu 7.2: mask it.
    opts+=(-e QEMU_CPU=cortex-a72 --tmpfs /sys/devices/system/cpu)
    timeout "$EMULATED_TIMEOUT" "$DOCKER" run "${opts[@]}" "$@"
  else
    timeout 300 "$DOCKER" run "${opts[@]}" "$@"
  fi
}

check() {
  local arch=$1 out
  local image="$TAG-$arch"
  log "checks on $image"
  out=$("$DOCKER" image inspect -f '{{.Architecture}} {{.Config.User}} {{index .Config.Labels "io.edge-asr.model.name"}} {{index .Config.Labels "io.edge-asr.model.version"}}' "$image")
  echo "architecture, user, model labels: $out" >&2
  [ "$out" = "$arch 10001 $MODEL_NAME $MODEL_VERSION" ] || die "$arch: unexpected image config: $out"

  # shellcheck disable=SC2016  # expanded by the container's shell
  out=$(run_in "$arch" --entrypoint sh "$image" -c \
    'id; uname -m; for c in gcc cc g++ make; do command -v "$c" && exit 1; done; echo no-compilers')
  echo "$out" >&2
  grep -q 'groups=.*(audio)' <<<"$out" || die "$arch: user is not in the audio group"
  grep -q '^no-compilers$' <<<"$out" || die "$arch: a compiler is left in the runtime image"

  local started=$SECONDS
  out=$(run_in "$arch" "$image" transcribe --json "$SAMPLE")
  echo "transcribe ($((SECONDS - started)) s): $out" >&2
  python3 -c 'import json,sys; t=json.loads(sys.argv[1])["text"]; sys.exit(0 if t==sys.argv[2] else f"got {t!r}, expected {sys.argv[2]!r}")' \
    "$out" "$EXPECTED_TEXT" || die "$arch: wrong transcript"

  # The daemon itself, configured by a mounted YAML (site_id) and the environment (the rest),
  # as non-root with its state in the image's volume: one JSON line per utterance on stdout.
  printf 'site_id: build-check\n' >"$WORK/config-check.yaml"
  chmod 0644 "$WORK/config-check.yaml"
  started=$SECONDS
  out=$(run_in "$arch" -v "$WORK/config-check.yaml:/etc/edge-asr/config.yaml:ro" \
    -e "EDGE_ASR_AUDIO__SOURCE=file:$SAMPLE" -e EDGE_ASR_AUDIO__REALTIME=false \
    -e EDGE_ASR_MQTT__ENABLED=false -e EDGE_ASR_OUTPUT__STDOUT=true "$image" 2>"$WORK/run-$arch.err") \
    || { tail -20 "$WORK/run-$arch.err" >&2; die "$arch: edge-asr run failed"; }
  echo "edge-asr run ($((SECONDS - started)) s): $out" >&2
  grep -q "\"site_id\": *\"build-check\"" <<<"$out" || die "$arch: daemon output lacks the YAML's site_id"
  grep -q "\"text\": *\"$EXPECTED_TEXT\"" <<<"$out" || die "$arch: daemon did not publish the transcript"

  # HEALTHCHECK: unhealthy (exit 1) with no daemon; "healthy" in Docker while the daemon
  # listens to a minute of audio in real time.
  if run_in "$arch" "$image" health >/dev/null 2>&1; then
    die "$arch: 'edge-asr health' passed with no daemon running"
  fi
  sox "$REPO/docker/arm64/samples/set-a-timer-for-ten-minutes.wav" "$WORK/minute.wav" repeat 30
  chmod 0644 "$WORK/minute.wav"
  local cid status=""
  local emulated=()
  [ "$arch" = amd64 ] || emulated=(-e QEMU_CPU=cortex-a72 --tmpfs /sys/devices/system/cpu)
  cid=$("$DOCKER" run -d --network none --platform "linux/$arch" "${emulated[@]}" \
    -v "$WORK/minute.wav:/tmp/minute.wav:ro" \
    -e EDGE_ASR_AUDIO__SOURCE=file:/tmp/minute.wav -e EDGE_ASR_MQTT__ENABLED=false \
    --health-interval 2s --health-start-period 5s "$image")
  for _ in $(seq 50); do
    status=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$cid")
    [ "$status" = healthy ] && break
    sleep 1
  done
  echo "HEALTHCHECK: $status (exit codes of the checks: $("$DOCKER" inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{end}}' "$cid"))" >&2
  "$DOCKER" rm -f "$cid" >/dev/null
  [ "$status" = healthy ] || die "$arch: the container never became healthy"

  # `edge-asr serve`, as the Kubernetes transcriber runs it: /health and /ready answer 200.
  cid=$("$DOCKER" run -d --network none --platform "linux/$arch" "${emulated[@]}" "$image" \
    serve --config /etc/edge-asr/config.yaml --host 127.0.0.1 --port 8080)
  local probe=""
  for _ in $(seq 60); do
    probe=$("$DOCKER" exec "$cid" python3 -c 'import urllib.request as u
for path in ("/health", "/ready"):
    print(path, u.urlopen("http://127.0.0.1:8080" + path, timeout=5).status)' 2>/dev/null) && break
    sleep 1
  done
  "$DOCKER" rm -f "$cid" >/dev/null
  echo "edge-asr serve: ${probe//$'\n'/, }" >&2
  [ "$probe" = $'/health 200\n/ready 200' ] || die "$arch: edge-asr serve did not answer /health and /ready"

  # `edge-asr wyoming` (the [wyoming] extra), as Home Assistant reaches it: a Describe event is
  # answered with an Info event.
  cid=$("$DOCKER" run -d --network none --platform "linux/$arch" "${emulated[@]}" "$image" \
    wyoming --uri tcp://127.0.0.1:10300)
  local info=""
  for _ in $(seq 60); do
    info=$("$DOCKER" exec "$cid" python3 -c 'import json, socket
with socket.create_connection(("127.0.0.1", 10300), timeout=10) as s:
    s.sendall(b"{\"type\": \"describe\"}\n")
    print(json.loads(s.makefile("rb").readline())["type"])' 2>/dev/null) && break
    sleep 1
  done
  "$DOCKER" rm -f "$cid" >/dev/null
  echo "edge-asr wyoming: describe -> ${info:-no answer}" >&2
  [ "$info" = info ] || die "$arch: edge-asr wyoming did not answer a Describe with Info"
}

for arch in "${arches[@]}"; do make_base "$arch"; done
failed=()
for arch in "${arches[@]}"; do
  build "$arch"
  # In a subshell: a failed check ends only that architecture's checks.
  (check "$arch") || failed+=("$arch")
done

log "image sizes"
printf '%-28s %-7s %14s %18s\n' IMAGE ARCH "SIZE (MB)" "COMPRESSED (MB)"
for arch in "${arches[@]}"; do
  for image in "$TAG-$arch" "edge-asr-base:$SUITE-$arch"; do
    size=$("$DOCKER" image inspect -f '{{.Size}}' "$image")
    # What a pull transfers: the layers gzip-compressed.
    gz=$("$DOCKER" save "$image" | gzip -6 | wc -c)
    awk -v i="$image" -v a="$arch" -v s="$size" -v g="$gz" 'BEGIN { printf "%-28s %-7s %14.1f %18.1f\n", i, a, s / 1e6, g / 1e6 }'
  done
done
[ ${#failed[@]} -eq 0 ] || die "checks FAILED for: ${failed[*]} (see above)"
echo "build-local: all checks passed for: ${arches[*]}"
