# syntax=docker/dockerfile:1
# Inference image for an exported physai policy: physai-training's runtime on ONNX Runtime.
#
# Build from the repository root (the build needs core/ and training/; what else the context
# may send is cut down by inference.Dockerfile.dockerignore beside this file):
#
#   docker build -f training/docker/inference.Dockerfile -t physai-inference .
#
# Build arguments:
#   BASE_IMAGE   a Debian/Ubuntu image with Python 3.12 and venv (default python:3.12-slim-bookworm;
#                an NVIDIA base such as a CUDA runtime image with Python 3.12 works the same way)
#   ORT_PACKAGE  onnxruntime==1.32.0 (CPU, default) or "onnxruntime-gpu[cuda,cudnn]==1.32.0" (CUDA
#                and cuDNN come as wheels; the driver comes from the host's NVIDIA container toolkit)
#   INSTALL      runtime (default): physai-core and physai-training without their training
#                dependencies (no torch: ONNX only, a small image); full: with all of them
#                (torch too, for TorchScript policies)
#   MODEL_IMAGE  the model carrier image written by physai.training.package.package_policy
#                (its files are at /policy); only used by the `with-model` target
#
# The policy, at $PHYSAI_POLICY (default /policy), comes one of two ways:
#   baked in:  --target with-model --build-arg MODEL_IMAGE=myacr.azurecr.io/policies/ppo:1.0.0
#   mounted:   the default target has no policy; mount the carrier as a Kubernetes image volume
#              (volumes: image: {reference: ...}) at /model and set PHYSAI_POLICY=/model/policy,
#              or `docker run -v "$PWD/exports/ppo:/policy:ro" physai-inference`
#
# The entrypoint loads the policy (physai.training.runtime.load_policy: the card is read and the
# chosen file's sha256 checked), prints one JSON line, then runs the container's command if one
# was given (e.g. a policy server), or exits 0. A policy that cannot be loaded exits 2.

ARG BASE_IMAGE=python:3.12-slim-bookworm
ARG MODEL_IMAGE=scratch

FROM ${MODEL_IMAGE} AS model

FROM ${BASE_IMAGE} AS base
ARG ORT_PACKAGE=onnxruntime==1.32.0
ARG INSTALL=runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/physai \
    PATH=/opt/physai/bin:$PATH
COPY core/pyproject.toml core/README.md core/CHANGELOG.md /src/core/
COPY core/src /src/core/src
COPY core/specifications /src/core/specifications
COPY training/pyproject.toml training/README.md training/CHANGELOG.md /src/training/
COPY training/src /src/training/src
COPY training/specifications /src/training/specifications
# runtime: the two physai packages without their dependencies, then only what loading and
# running an ONNX policy imports, pinned to the versions in uv.lock (a test keeps them equal).
# DL3013 cannot see pins in the local source folders or in $ORT_PACKAGE (pinned in its ARG).
# hadolint ignore=DL3013
RUN python3 -m venv /opt/physai \
 && if [ "$INSTALL" = "full" ]; then \
        pip install /src/core /src/training "$ORT_PACKAGE"; \
    else \
        pip install --no-deps /src/core /src/training \
        && pip install "$ORT_PACKAGE" numpy==2.2.6 pydantic==2.14.3 pydantic-settings==2.16.3 \
               fsspec==2026.2.0 pyyaml==6.0.3 typer==0.29.2 rich==15.0.0; \
    fi \
 && rm -rf /src
COPY training/docker/entrypoint.py /opt/physai/entrypoint.py
ENV PHYSAI_POLICY=/policy \
    PHYSAI_DEVICE=auto
# any non-root user can read the policy: the carrier's files are 0644 in 0755 folders
USER 65532:65532
ENTRYPOINT ["python", "/opt/physai/entrypoint.py"]
CMD []

FROM base AS with-model
COPY --from=model /policy /policy

# the default target: the runtime without a policy (mount one)
FROM base AS runtime
