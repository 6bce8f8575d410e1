# The step image: Loopline, the ML stack (pinned by constraints.txt) and this project, for
# Kubeflow tasks, Airflow pods (`isolation: {mode: kubernetes}`) and the model server.
#
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t registry.example/loopline-step:0.1.0 .
#   docker build --build-arg TORCH_INDEX_URL=<PyTorch wheel index for your CUDA> -t ...-cuda .
#   docker build --build-arg BASE_IMAGE=<any image with Python 3.11 on PATH> .
#
# PyTorch's CUDA wheels carry their own CUDA runtime, so a CUDA base image is optional; the
# node needs the NVIDIA driver. The project lives at /app (`loopline compile kfp
# --project-root /app`, the default): everything in it but local state (.dockerignore), so
# a pod finds the same specs, params, expectations, Feast repo and project components as the
# machine that compiled the pipeline (KFP tasks check the spec's fingerprint).
# Not built in this repository's CI (no Docker engine there): docs/production.md.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX_URL=
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 GX_ANALYTICS_ENABLED=False \
    PATH=/opt/loopline/bin:$PATH
WORKDIR /app

# The installed stack first: a change to the project's files does not reinstall it.
COPY constraints.txt pyproject.toml README.md ./
COPY loopline ./loopline
RUN python3 -m venv /opt/loopline \
 && pip install --upgrade pip \
 && if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install -c constraints.txt torch==2.13.0 --index-url "$TORCH_INDEX_URL"; fi \
 && pip install -c constraints.txt ".[all]"

# The commit the project files come from (the image has no .git): models trained here record
# it as their lineage (`--build-arg GIT_COMMIT=$(git rev-parse HEAD)`). Set after the install,
# so a new commit reuses the installed layer.
ARG GIT_COMMIT=none
ENV LOOPLINE_GIT_COMMIT=${GIT_COMMIT}
COPY . ./
# The Feast repo's offline sources are built from data that ships in a package (no network);
# every spec must load here, with and without the production profile.
RUN python feature_repo/sources.py \
 && for spec in pipelines/*.yaml; do loopline validate-spec "$spec" \
      && LOOPLINE_PROFILE=production loopline validate-spec "$spec" || exit 1; done

CMD ["loopline", "--help"]
