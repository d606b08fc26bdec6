# syntax=docker/dockerfile:1
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY adapters ./adapters
RUN python -m venv /opt/kajitori \
    && /opt/kajitori/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 kajitori \
    && useradd --system --uid 10001 --gid kajitori --home-dir /var/lib/kajitori --create-home kajitori
COPY --from=build /opt/kajitori /opt/kajitori
ENV PATH=/opt/kajitori/bin:$PATH \
    KAJITORI_CONFIG=/etc/kajitori/kajitori.yaml \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/kajitori
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["kajitori"]
CMD ["serve"]
