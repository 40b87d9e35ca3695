# syntax=docker/dockerfile:1
# One image for everything: Airflow (api-server, scheduler, dag-processor, triggerer), the decision
# service (hms-api) and the KubernetesPodOperator step pods. Nothing secret is baked in: the registry
# URL, Airflow's JWT secret and its database come from the environment at run time.
#   docker build -t hms:0.1.0 .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HMS_HOME=/var/lib/hms \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/hms/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/hms/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

# uid/gid 10001: what the Kubernetes manifests and the step pods (runAsUser) expect.
RUN groupadd --system --gid 10001 hms \
    && useradd --system --uid 10001 --gid hms --no-create-home --home-dir /opt/hms --shell /usr/sbin/nologin hms

WORKDIR /opt/hms

# The pinned set first, so this layer is rebuilt only when the lock changes. Then the only engine that
# behaves exactly like OPA: its metadata claims Python>=3.14, but the wrapper is stdlib-only.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock \
    && pip install --no-cache-dir --ignore-requires-python --no-deps opa-golib-python-bindings==0.4.4

COPY pyproject.toml README.md ./
COPY src/ src/
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf build src/*.egg-info

COPY dags/ dags/
COPY plugins/ plugins/
COPY include/ include/
COPY .hms-ci/ .hms-ci/

# Written at run time (named volumes in docker-compose.yaml start as copies of these, owner included).
RUN mkdir -p /opt/airflow/logs /opt/airflow/auth /var/lib/hms \
    && chown -R hms:hms /opt/airflow /var/lib/hms

USER 10001:10001
EXPOSE 8000 8080

# The decision service's liveness (compose gives each Airflow service its own check; Kubernetes uses probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["hms", "serve", "--env", "staging", "--host", "0.0.0.0", "--port", "8000"]
