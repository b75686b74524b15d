# One image for every ragreel service in compose.yaml: the Prefect server, the one-shot deploy, the
# worker and the HTTP API. Build it with `docker compose build` (or `docker build -t ragreel .`).

# --- stage 1: llama.cpp for AVX2, built once, as the Makefile does -------------------------------
# llama.cpp's native build picks the CPU's AMX and AVX-512 kernels, which crash (SIGSEGV on the first
# prompt longer than a token) where the kernel or sandbox does not grant AMX; and an image's build
# machine is not the machine it runs on. LLAMA_VERSION and LLAMA_CMAKE_ARGS are the Makefile's
# (tests/test_container_files.py keeps them equal); like there, the AVX flags apply on x86_64 only.
FROM python:3.11-slim-bookworm AS llama

# build-essential: the C/C++ compiler and make; cmake: llama.cpp's build system. Only in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

ARG LLAMA_VERSION=0.3.36
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF"
RUN if [ "$(uname -m)" = x86_64 ]; then export CMAKE_ARGS="${LLAMA_CMAKE_ARGS}"; fi \
    && pip wheel --no-deps --no-cache-dir -w /wheels "llama-cpp-python==${LLAMA_VERSION}"

# --- stage 2: the runtime -------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# libgomp1: llama.cpp's CPU backend is built with OpenMP and links libgomp.so.1, which the slim image
# lacks. Nothing else comes from apt: ffmpeg ships in imageio-ffmpeg, libespeak-ng and its data in
# espeakng-loader (and piper-tts), libsndfile in soundfile's wheel, the CJK font in manimgx-fonts-cjk.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# As the Makefile: models come from installed packages (a hub lookup would hang offline), and no
# telemetry. PYTHONUNBUFFERED so that logs reach `docker compose logs` at once.
ENV HF_HUB_OFFLINE=1 \
    DO_NOT_TRACK=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    RAGREEL_HOME=/data/ragreel \
    RAGREEL_MODEL_CACHE=/data/cache

# The project runs from /app, as from a checkout: prefect.yaml's entrypoints (flows/...) are paths
# relative to the working directory that `prefect deploy` records, and deployments/*.sh call
# .venv/bin/prefect, so the virtual environment is /app/.venv as with `make install`.
# /data's folders are made here so that a new named volume starts with them, owned by ragreel.
RUN useradd --create-home --uid 1000 ragreel \
    && mkdir -p /app /data/ragreel /data/cache /data/prefect \
    && chown -R ragreel:ragreel /app /data
WORKDIR /app
RUN python -m venv /app/.venv && pip install --no-cache-dir --upgrade pip

# torch first, from PyTorch's CPU index: pyproject pins torch==2.13.0, and from PyPI that pin is the
# CUDA build (several GB of GPU libraries that nothing here uses). The CPU wheel is 2.13.0+cpu, which
# satisfies the pin, so the project install below keeps it.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY --from=llama /wheels /wheels

# Dependencies first, from pyproject.toml alone (with no package folders yet), so that a change of
# code does not reinstall them; then the project, editable (`pip install -e .`, as the Makefile):
# flows/ and tasks/ are run from /app, so they must be the files there, not a copy in site-packages.
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir --find-links /wheels -e .
COPY --chown=ragreel:ragreel . .
RUN pip install --no-cache-dir --no-deps --force-reinstall -e .

USER ragreel
VOLUME ["/data"]
EXPOSE 4200 8000

# compose.yaml gives each service its own command; this default serves the API (it needs
# RAGREEL_API_TOKEN, since it listens beyond 127.0.0.1).
CMD ["python", "-m", "ragreel.api", "--host", "0.0.0.0", "--port", "8000"]
