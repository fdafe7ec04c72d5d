# syntax=docker/dockerfile:1
#
# One image for every kubevast process:
#   vms-mock            the VMS emulator (REST API, S3, NVMe/TCP)      -> non-root
#   csi-block-driver    block CSI controller (--mode controller)       -> non-root
#                       block CSI node plugin (--mode node)            -> root + privileged (set by the chart)
#   cosi-driver         COSI driver and its companion operator         -> non-root
#
# Build:   docker build -t kubevast:dev .
# Lint:    hack/lint-packaging.sh   (hadolint; this repository's CI cannot build images: no engine)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build stage: a virtualenv holding kubevast and its runtime dependencies -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers only in this stage: a dependency without a wheel for this platform (e.g. crc32c)
# builds here and never reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/kubevast
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kubevast_common/ kubevast_common/
COPY vms_client/ vms_client/
COPY vms_mock/ vms_mock/
COPY csi_block_driver/ csi_block_driver/
COPY cosi_driver/ cosi_driver/
RUN /opt/kubevast/bin/pip install --no-compile . \
 && /opt/kubevast/bin/python -m compileall -q /opt/kubevast/lib

# ---- runtime stage ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# Re-declared: an ARG from before the first FROM is not visible inside a stage otherwise.
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kubevast" \
      org.opencontainers.image.description="Block CSI and COSI drivers for a VAST-style data platform, and the vms-mock emulator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# Host tools of the CSI node plugin: nvme-cli (NVMe/TCP connect), util-linux (losetup, mount,
# blkid, findmnt for the loop backend and bind mounts), e2fsprogs and xfsprogs (mkfs, resize2fs,
# xfs_growfs). Versions follow the base image's Debian release; pinning them would break the build
# at every Debian point release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nvme-cli util-linux mount e2fsprogs xfsprogs \
 && rm -rf /var/lib/apt/lists/*

# Unprivileged identity for the controller, the COSI driver, the operator and vms-mock.
RUN groupadd --system --gid 10001 kubevast \
 && useradd --system --uid 10001 --gid kubevast --home-dir /var/lib/kubevast --create-home \
      --shell /usr/sbin/nologin kubevast \
 && install -d -o kubevast -g kubevast /var/lib/vms-mock /var/lib/cosi /csi

COPY --from=build /opt/kubevast /opt/kubevast
ENV PATH=/opt/kubevast/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KUBEVAST_HEALTH_URL=http://127.0.0.1:8080/api/openapi.json

USER 10001:10001
WORKDIR /var/lib/kubevast
EXPOSE 8080 9000 4420 8009

# For `docker run`: probes KUBEVAST_HEALTH_URL (vms-mock's API by default; set it to a driver's
# /metrics address for the drivers). Kubernetes ignores HEALTHCHECK: the charts use probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['KUBEVAST_HEALTH_URL'], timeout=4)"]

# The default process is the emulator. No ENTRYPOINT on purpose: the charts choose each container's
# program as the first element of `args`.
CMD ["vms-mock", "--data-dir", "/var/lib/vms-mock", "--host", "0.0.0.0"]
