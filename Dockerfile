# syntax=docker/dockerfile:1
# BlinkPOS payment service: one image for the app (gunicorn), the worker and the migration job.
#   docker build -t blinkpos-payments .
#   docker run --env-file .env -p 8080:8080 blinkpos-payments

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: compilers live here only, in case a dependency has no wheel for this platform ---
FROM ${PYTHON_IMAGE} AS builder

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

# Runtime dependencies only: requirements-dev.txt (test servers, simulator, linters) stays out.
COPY requirements.txt /tmp/requirements.txt
RUN pip install --upgrade pip \
    && pip install -r /tmp/requirements.txt

# --- runtime: same base, no compilers, non-root ---
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=dev
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="blinkpos-payments" \
      org.opencontainers.image.description="BlinkPOS payment service: Lightning invoices, tip splitting and exactly-once forwarding over Blink" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}" \
    PORT=8080 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc

# A fixed uid/gid so volume and secret permissions can be set from outside.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p "${PROMETHEUS_MULTIPROC_DIR}" \
    && chown app:app "${PROMETHEUS_MULTIPROC_DIR}"

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# The code stays owned by root: the running user can read it but not change it.
COPY service/ ./service/
COPY sql/ ./sql/
COPY migrate/ ./migrate/
COPY wsgi.py gunicorn.conf.py ./

USER app

EXPOSE 8080

# /livez touches nothing but the process; readiness (/readyz) is the load balancer's business.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '8080'), timeout=2)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
