# Image of PEM Registry: the API (`pemreg serve`), the worker (`pemreg worker`) and the Prefect server all
# run from it (docker-compose.yml). CPU by default; the GPU worker builds it with
# TORCH_INDEX=https://download.pytorch.org/whl/cu128 (torch's CUDA wheels bundle the CUDA runtime; the host
# needs the NVIDIA driver and container toolkit). A CUDA base image (nvidia/cuda:*-runtime) also works as
# BASE_IMAGE if it has Python 3.11.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PEMREG_HOME=/data/pemreg
WORKDIR /app

# torch first, from the chosen index, so the project's pin does not pull another build.
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX}

COPY pyproject.toml README.md alembic.ini ./
COPY registry ./registry
COPY flows ./flows
COPY api ./api
COPY migrations ./migrations
RUN pip install . && useradd --create-home --uid 1000 pemreg && mkdir -p /data/pemreg && chown pemreg /data/pemreg

USER pemreg
EXPOSE 8000
ENTRYPOINT ["pemreg"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
