# syntax=docker/dockerfile:1
# LSTM-DSSM search: one image for the three roles of docker-compose.yml (trainer, indexer, api).
# The default command serves the API; trainer and indexer run scripts/train.py and
# scripts/build_index.py from the same image, the commands the README uses (thin wrappers over the
# installed cli/ package).
#
#   docker build -t lstm-dssm-search .
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/artifacts/models/stdlib-demo:/model:ro" \
#       -v "$PWD/artifacts/indexes/stdlib-demo:/index:ro" lstm-dssm-search

# Same Python minor as development (3.11); the patch release and Debian suite are pinned for
# reproducible builds.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# ---- build: a virtual environment with the CPU-only torch wheel and the project (no dev extras) ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU wheel index: PyPI's default Linux wheel pulls ~2 GB of CUDA libraries.
# 2.13.0+cpu satisfies the project's torch==2.13.0 pin, so the next install keeps it.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common ./common
COPY models ./models
COPY index ./index
COPY app ./app
COPY cli ./cli
COPY bench ./bench
# A regular (not editable) install: the runtime stage copies /opt/venv alone, without /src.
RUN pip install --no-cache-dir .

# ---- runtime: the venv, the scripts, a non-root numeric user; no compilers, no pip cache ----
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    DSSM_MODEL_DIR=/model/current \
    DSSM_INDEX_DIR=/index/current \
    DSSM_DEMO_DATA=/app/demo-data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY scripts ./scripts
# The embedded demo dataset (the stdlib's own documentation) is built into the image: `docker compose
# up` needs no download and no data of the user's. Mount points are owned by the runtime user so that
# named volumes mounted there start writable for it (Docker copies the ownership into a new volume).
RUN python scripts/make_demo_data.py --out /app/demo-data \
    && mkdir -p /model /index /data \
    && chown 10001:10001 /model /index
# A numeric UID:GID needs no passwd entry and lets Kubernetes' runAsNonRoot verify it is not root.
USER 10001:10001
EXPOSE 8000
# slim has no curl: ask /health with the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
CMD ["python", "scripts/serve.py", "--host", "0.0.0.0", "--port", "8000"]
