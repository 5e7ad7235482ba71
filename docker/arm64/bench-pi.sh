#!/usr/bin/env bash
# The file benchmark (`python -m benchmarks.run`, README "Benchmarks") inside the edge-asr image
# on a Raspberry Pi: real arm64 numbers. On the Pi (64-bit OS, Docker), from a checkout:
#
#   docker/arm64/bench-pi.sh [options of benchmarks.run, e.g. --rounds 5]
#
# It builds the Dockerfile's "bench" target (the runtime image plus sherpa-onnx, pocketsphinx,
# espeak-ng, flite, sox and benchmarks/), runs the benchmark's file section (add
# `--sections files,precision` for int8 vs fp32 too; the latency and footprint sections need a
# broker and a sound server, which the image lacks) with the clips cached in
# benchmarks/.cache (synthesized in the container on the first run; a copy from another machine
# gives the same audio, hence comparable WERs), prints the table and writes the JSON to
# benchmarks/results/arm64-<board>.json with the board's model added.
#
# On an x86-64 host with qemu-user-static in binfmt_misc (docker/arm64/build-local.sh sets it
# up) the same arm64 image runs emulated as a Pi 4's Cortex-A72; the JSON is then
# benchmarks/results/arm64-qemu.json and says "emulated": those times say nothing about a Pi.
#
# Environment: IMAGE (an existing bench image: skip the build), BASE_IMAGE (build argument;
# default python:3.11-slim-bookworm, or edge-asr-base:bookworm-arm64 from build-local.sh on a
# host without registry access), OUT (the JSON file), CACHE (the clips folder), TIMEOUT (seconds
# for the run, default 3600), DOCKER (the docker command).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker || echo docker)}
CACHE=${CACHE:-$REPO/benchmarks/.cache}
TIMEOUT=${TIMEOUT:-3600}
HOST_CA=/etc/ssl/certs/ca-certificates.crt
export DOCKER_BUILDKIT=1

die() { printf 'bench-pi: %s\n' "$*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }

"$DOCKER" info >/dev/null 2>&1 || die "no Docker daemon answers (is Docker installed and running? are you in the docker group?)"

run_opts=(--rm --network none --platform linux/arm64)
case $(uname -m) in
  aarch64)
    emulated=false
    board=$(tr -d '\0' </proc/device-tree/model 2>/dev/null || echo "arm64 $(uname -n)")
    slug=$(tr '[:upper:]' '[:lower:]' <<<"$board" | sed 's/ rev .*//; s/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')
    OUT=${OUT:-$REPO/benchmarks/results/arm64-$slug.json}
    ;;
  x86_64)
    emulated=true
    board="qemu-user $(qemu-aarch64-static --version 2>/dev/null | head -1 | sed 's/.*version \([^ ]*\).*/\1/'), -cpu cortex-a72 (Raspberry Pi 4), on $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
    OUT=${OUT:-$REPO/benchmarks/results/arm64-qemu.json}
    # onnxruntime can crash reading /sys/devices/system/cpu under qemu: mask it.
    run_opts+=(-e QEMU_CPU=cortex-a72 --tmpfs /sys/devices/system/cpu)
    grep -qs '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
      || die "qemu-aarch64 is not registered in binfmt_misc (sudo docker/arm64/build-local.sh arm64 does it)"
    ;;
  *) die "$(uname -m): needs an arm64 (Raspberry Pi 4/5, 64-bit OS) or an x86-64 host with qemu" ;;
esac

if [ -z "${IMAGE:-}" ]; then
  IMAGE=edge-asr:bench-arm64
  log "docker build --target bench (linux/arm64) -> $IMAGE"
  build_opts=(--platform linux/arm64 --target bench -f "$REPO/docker/arm64/Dockerfile" -t "$IMAGE")
  [ -z "${BASE_IMAGE:-}" ] || build_opts+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  # pip in the build trusts the host's CAs (a TLS-inspecting proxy's, too).
  [ ! -s "$HOST_CA" ] || build_opts+=(--secret "id=ca,src=$HOST_CA")
  started=$SECONDS
  "$DOCKER" build --network host "${build_opts[@]}" "$REPO" >&2
  echo "built in $((SECONDS - started)) s" >&2
fi

mkdir -p "$CACHE" "$(dirname "$OUT")"
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
raw="$(dirname "$OUT")/.bench-pi-$$.json"
trap 'rm -f "$raw"' EXIT

log "python -m benchmarks.run in $IMAGE ($board)"
[ "$emulated" = false ] || echo "EMULATED: these times are qemu's, not a Raspberry Pi's." >&2
# As the caller's user, so the clips and the JSON belong to them.
timeout "$TIMEOUT" "$DOCKER" run "${run_opts[@]}" --user "$(id -u):$(id -g)" \
  -v "$CACHE:/bench/cache" -v "$(dirname "$OUT"):/bench/out" "$IMAGE" \
  --sections files --cache /bench/cache --out "/bench/out/$(basename "$raw")" "$@"

# The container cannot see the board (or, under qemu, the emulated CPU): name it in the JSON.
python3 - "$raw" "$OUT" "$board" "$emulated" "$("$DOCKER" image inspect -f '{{.Id}}' "$IMAGE")" <<'EOF'
import json, sys
raw, out, board, emulated, image = sys.argv[1:]
data = json.load(open(raw))
machine = data.setdefault("machine", {})
machine["board"] = board
machine["emulated"] = emulated == "true"
machine["image"] = image
if machine["emulated"]:
    machine["note"] = (
        "arm64 emulated by qemu-user on an x86-64 host: times are not comparable to real "
        "hardware (nor to the x86-64 run); WER and the ratios between engines are indicative only"
    )
with open(out, "w") as f:
    f.write(json.dumps(data, indent=2) + "\n")
EOF
echo "written: $OUT" >&2
