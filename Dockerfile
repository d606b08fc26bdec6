# syntax=docker/dockerfile:1
# The base image by digest, so that a rebuild starts from the same bytes (python:3.11-slim
# on Debian 12). To move to a newer one: `docker buildx imagetools inspect
# python:3.11-slim-bookworm`, then change both FROM lines (docs/operations.md).
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Dependencies first, from the lock file with their hashes, wheels only: nothing is
# compiled, so neither stage needs a compiler.
COPY requirements.lock ./
RUN python -m venv /opt/kajitori \
    && /opt/kajitori/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
       --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY adapters ./adapters
RUN /opt/kajitori/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/kajitori/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
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
