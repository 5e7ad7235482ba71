# Multi-arch builds of docker/arm64/Dockerfile with docker buildx bake. Run from the repository
# root (paths below are relative to it):
#
#   docker buildx bake -f docker/arm64/docker-bake.hcl                 # amd64 + arm64 + index
#   docker buildx bake -f docker/arm64/docker-bake.hcl arm64 --load    # on the Pi itself
#   REGISTRY=ghcr.io/me VERSION=0.1.0 docker buildx bake -f docker/arm64/docker-bake.hcl --push
#   docker buildx bake -f docker/arm64/docker-bake.hcl gpu             # CUDA, amd64 only
#
# Tags (VERSION is the package's semantic version, MODEL_VERSION the baked-in model's):
#   REGISTRY/edge-asr:VERSION          multi-arch index (amd64 + arm64); also MAJOR.MINOR, latest
#   REGISTRY/edge-asr:VERSION-amd64    one platform
#   REGISTRY/edge-asr:VERSION-arm64    one platform (Raspberry Pi 4/5, 64-bit OS)
#   REGISTRY/edge-asr:VERSION-gpu-amd64
# The model name and version are image labels (io.edge-asr.model.name / .version); the build
# fails if they do not match the model inside.

variable "REGISTRY" {
  default = "ghcr.io/edge-asr"
}
variable "VERSION" {
  default = "0.1.0"
}
variable "MODEL_NAME" {
  default = "edge-asr-home-en"
}
variable "MODEL_VERSION" {
  default = "1.5.0"
}
variable "REVISION" {
  default = ""
}
variable "CREATED" {
  default = ""
}
# Also publish the moving tags MAJOR.MINOR and latest (releases only).
variable "MOVING_TAGS" {
  default = false
}

function "minor" {
  params = [version]
  result = join(".", slice(split(".", version), 0, 2))
}

group "default" {
  targets = ["amd64", "arm64", "multiarch"]
}

group "all" {
  targets = ["amd64", "arm64", "multiarch", "gpu"]
}

target "_common" {
  context    = "."
  dockerfile = "docker/arm64/Dockerfile"
  target     = "runtime"
  args = {
    BASE_IMAGE    = "python:3.11-slim-bookworm"
    VERSION       = VERSION
    REVISION      = REVISION
    CREATED       = CREATED
    MODEL_NAME    = MODEL_NAME
    MODEL_VERSION = MODEL_VERSION
  }
}

target "amd64" {
  inherits  = ["_common"]
  platforms = ["linux/amd64"]
  tags      = ["${REGISTRY}/edge-asr:${VERSION}-amd64"]
}

target "arm64" {
  inherits  = ["_common"]
  platforms = ["linux/arm64"]
  tags      = ["${REGISTRY}/edge-asr:${VERSION}-arm64"]
}

target "multiarch" {
  inherits  = ["_common"]
  platforms = ["linux/amd64", "linux/arm64"]
  tags = concat(
    ["${REGISTRY}/edge-asr:${VERSION}"],
    MOVING_TAGS ? ["${REGISTRY}/edge-asr:${minor(VERSION)}", "${REGISTRY}/edge-asr:latest"] : []
  )
}

# NVIDIA GPU (CUDA 12, cuDNN 9) with onnxruntime-gpu; amd64 only. The CUDA base is Ubuntu 24.04
# without Python, so the apt lists carry python3 and the pins are Ubuntu's. These pins were not
# checked by docker/arm64/build-local.sh (no CUDA base can be pulled there): refresh them with
#   docker run --rm BASE sh -c 'apt-get update -qq && apt-cache policy PACKAGE...'
target "gpu" {
  inherits  = ["_common"]
  platforms = ["linux/amd64"]
  tags      = ["${REGISTRY}/edge-asr:${VERSION}-gpu-amd64"]
  args = {
    BASE_IMAGE       = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
    ORT_PACKAGE      = "onnxruntime-gpu"
    ONNX_PROVIDER    = "CUDAExecutionProvider"
    ORT_VERSION      = "1.32.0"
    BUILD_APT        = "gcc=4:13.2.0-7ubuntu1 libc6-dev=2.39-0ubuntu8.6 pkg-config=1.8.1-2build1 libsystemd-dev=255.4-1ubuntu8.10 python3-venv=3.12.3-0ubuntu2 python3-dev=3.12.3-0ubuntu2"
    PYTHON_DEV_APT   = ""
    ALSA_PLUGINS_APT = "libasound2-plugins=1.2.7.1-1ubuntu2"
    RUNTIME_APT      = "python3=3.12.3-0ubuntu2 python3-venv=3.12.3-0ubuntu2 libportaudio2=19.6.0-1.2build3 libsndfile1=1.2.2-1ubuntu5.24.04.1 libpulse0=1:16.1+dfsg1-2ubuntu10.1"
    # Keep the CUDA base's layers and environment (NVIDIA_*, LD_LIBRARY_PATH) unflattened.
    RUNTIME_ROOT     = "runtime-base"
  }
}

# The runtime image plus the file benchmark, sherpa-onnx, pocketsphinx, espeak-ng, flite and sox
# (for benchmark numbers on real hardware; not published). No platform: the builder's own, so
# on a Pi:  docker buildx bake -f docker/arm64/docker-bake.hcl bench --load
# docker/arm64/bench-pi.sh builds and runs it.
target "bench" {
  inherits = ["_common"]
  target   = "bench"
  tags     = ["edge-asr:bench"]
}
