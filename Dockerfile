# syntax=docker/dockerfile:1
# One image for everything: Airflow (api-server, scheduler, dag-processor, triggerer), the decision
# service (hms serve) and the KubernetesPodOperator step pods. Nothing secret is baked in: the registry
# URL, Airflow's JWT secret and its database come from the environment at run time.
#   make image        (scripts/build-image.sh: wheelhouse on the host, then docker build)
# The build never reaches PyPI itself: the host downloads every wheel of requirements/runtime.lock (hashes
# checked) into build/wheelhouse, where its own CA bundle and proxy work, and the build stage installs from
# that with --no-index and the hashes again. Only the venv reaches the final stage, so neither the
# wheelhouse nor anything the host needed to reach PyPI is in the published image.
# BASE_IMAGE: the public python:3.11-slim-bookworm, or where no registry is reachable a Debian bookworm
# base made from Debian's packages (scripts/base-image.sh); both have python3.11 and its venv module.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=/tmp/wheelhouse
COPY requirements/runtime.lock requirements/opa.lock /tmp/requirements/
COPY build/wheelhouse/ /tmp/wheelhouse/
# The pinned set with every file's hash checked, then the only engine that behaves exactly like OPA (its
# metadata claims Python>=3.14, but the wrapper is stdlib-only). A layer of its own: rebuilt only with the locks.
RUN python3.11 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes -r /tmp/requirements/runtime.lock \
    && /opt/venv/bin/pip install --require-hashes --no-deps --ignore-requires-python -r /tmp/requirements/opa.lock
# hms itself: its wheel, built on the host from this checkout.
COPY build/hms/ /tmp/hms/
RUN /opt/venv/bin/pip install --no-deps --find-links /tmp/hms hms \
    && /opt/venv/bin/pip uninstall --yes pip \
    && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    HMS_HOME=/var/lib/hms \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/hms/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/hms/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

# uid/gid 10001: what the Kubernetes manifests and the step pods (runAsUser) expect.
RUN groupadd --system --gid 10001 hms \
    && useradd --system --uid 10001 --gid hms --no-create-home --home-dir /opt/hms --shell /usr/sbin/nologin hms

WORKDIR /opt/hms
COPY --from=build /opt/venv /opt/venv
COPY dags/ dags/
COPY plugins/ plugins/
COPY include/ include/
COPY .hms-ci/policy-pipeline.yml .hms-ci/

# Written at run time (named volumes in docker-compose.yaml start as copies of these, owner included).
RUN mkdir -p /opt/airflow/logs /opt/airflow/auth /var/lib/hms \
    && chown -R hms:hms /opt/airflow /var/lib/hms

USER 10001:10001
EXPOSE 8000 8080

# The decision service's liveness (compose gives each Airflow service its own check; Kubernetes uses probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["hms", "serve", "--env", "staging", "--host", "0.0.0.0", "--port", "8000"]
