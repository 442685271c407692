# graftql gateway image. The install steps are the README's (`pip install .`), so they cannot drift.
# Build: docker build -t graftql .      Run: docker run -p 8000:8000 -v $PWD/gateway.yaml:/etc/graftql/gateway.yaml graftql

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/graftql \
 && /opt/graftql/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home graftql
COPY --from=build /opt/graftql /opt/graftql
ENV PATH=/opt/graftql/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER graftql
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["graftql", "serve", "--config", "/etc/graftql/gateway.yaml", "--host", "0.0.0.0", "--port", "8000"]
