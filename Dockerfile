# graftql gateway image. The install step is the README's (`pip install .`), so it cannot drift.
# Build: docker build -t graftql .            (without tracing: --build-arg EXTRAS=)
# Run:   docker run --read-only --tmpfs /tmp -p 8000:8000 \
#          -v $PWD/gateway.yaml:/etc/graftql/gateway.yaml:ro graftql
# docs/deploy.md says how to run it (Kubernetes manifests in deploy/kubernetes/).

# -- build: a virtual environment with graftql and its dependencies ----------------------------
FROM python:3.11-slim AS build
# Optional extras to install: "otel" brings OpenTelemetry tracing (off until server.tracing).
ARG EXTRAS=otel
# GraphiQL's browser files, from the npm registry (the versions and lockfile graftql ships),
# for `server.graphiql_assets: /opt/graftql/share/graphiql`: GraphiQL without a CDN. Empty:
# none (the image is then built without Node.js too).
ARG GRAPHIQL_ASSETS=/opt/graftql/share/graphiql
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Bytecode is compiled now, so that a read-only root filesystem never needs to write it; the
# installers are build tools and stay behind (the final stage removes the base image's too).
RUN python3 -m venv /opt/graftql \
 && /opt/graftql/bin/pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" \
 && /opt/graftql/bin/python -m compileall -q /opt/graftql/lib \
 && /opt/graftql/bin/pip uninstall -y pip setuptools wheel \
 && rm -f /opt/graftql/bin/pip*
# Node.js and npm exist only in this stage: `npm ci` (install scripts off) on the shipped
# lockfile, every file checked against the integrity hashes in strawberry's page.
RUN if [ -n "$GRAPHIQL_ASSETS" ]; then \
      apt-get update -q && apt-get install -y -q --no-install-recommends nodejs npm \
      && /opt/graftql/bin/graftql graphiql-assets --dir "$GRAPHIQL_ASSETS" \
      && rm -rf /root/.npm; \
    fi

# -- final: the Python runtime, the environment, nothing else -----------------------------------
FROM python:3.11-slim
RUN python3 -m pip uninstall -y pip setuptools wheel \
 && rm -rf /root/.cache /usr/local/bin/pip* \
 && groupadd --system --gid 10001 graftql \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin graftql
COPY --from=build /opt/graftql /opt/graftql
ENV PATH=/opt/graftql/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /srv/graftql
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
# Exec form: graftql is PID 1 and receives SIGTERM (graceful stop) and SIGHUP (config reload).
ENTRYPOINT ["graftql", "serve", "--config", "/etc/graftql/gateway.yaml", "--host", "0.0.0.0", "--port", "8000"]
