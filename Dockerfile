# syntax=docker/dockerfile:1
# Two stages: the wheel is built where build tools may exist; the final image only installs wheels,
# so it carries no compiler and no source tree.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# A compiler only for a dependency without a wheel for this platform; the usual ones ship wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
RUN python -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SCIM_GATEWAY_LOG_FORMAT=json \
    SCIM_GATEWAY_STATE=sqlite:////var/lib/scim-gateway/state.sqlite3
RUN groupadd --system --gid 10001 scim \
    && useradd --system --uid 10001 --gid scim --home-dir /var/lib/scim-gateway --shell /usr/sbin/nologin scim \
    && install -d -o scim -g scim -m 0750 /var/lib/scim-gateway
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links=/wheels scim-mail-gateway
WORKDIR /var/lib/scim-gateway
# Numeric, so orchestrators that enforce runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
# Liveness only (no backend call), on the port and scheme set by SCIM_GATEWAY_PORT and SCIM_GATEWAY_TLS_CERT_FILE.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, ssl, sys, urllib.request; tls = bool(os.environ.get('SCIM_GATEWAY_TLS_CERT_FILE')); url = ('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('SCIM_GATEWAY_PORT', '8080') + '/healthz'; ctx = ssl._create_unverified_context() if tls else None; sys.exit(0 if urllib.request.urlopen(url, timeout=2, context=ctx).status == 200 else 1)"]
ENTRYPOINT ["scim-gateway"]
CMD ["serve", "--host", "0.0.0.0"]
