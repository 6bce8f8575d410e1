# The step image: Loopline, the ML stack (pinned by constraints.txt) and this project's files,
# for Kubeflow tasks and Airflow pods (`isolation: {mode: kubernetes}`).
#
#   docker build -t loopline-step:0.1.0 .
#   docker build --build-arg TORCH_INDEX_URL=<PyTorch wheel index for your CUDA> -t loopline-step:0.1.0-cuda .
#   docker build --build-arg BASE_IMAGE=<any image with Python 3.11 on PATH> .
#
# PyTorch's CUDA wheels carry their own CUDA runtime, so a CUDA base image is optional; the
# node needs the NVIDIA driver. The project lives at /app (`loopline compile kfp
# --project-root /app`, the default).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX_URL=
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 GX_ANALYTICS_ENABLED=False \
    PATH=/opt/loopline/bin:$PATH
WORKDIR /app

COPY constraints.txt pyproject.toml README.md ./
COPY loopline ./loopline
RUN python3 -m venv /opt/loopline \
 && pip install --upgrade pip \
 && if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install -c constraints.txt torch==2.13.0 --index-url "$TORCH_INDEX_URL"; fi \
 && pip install -c constraints.txt ".[all]"

COPY params.yaml ./
COPY pipelines ./pipelines
COPY expectations ./expectations
COPY feature_repo ./feature_repo
RUN python -c "import pathlib, runpy; runpy.run_path('feature_repo/sources.py')['ensure_sources'](pathlib.Path('feature_repo/data'))" \
 && loopline validate-spec pipelines/flights.yaml

CMD ["loopline", "--help"]
