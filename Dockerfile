# syntax=docker/dockerfile:1
# kubewatch container image.
#
#   docker build -t kubewatch:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run --rm -v $PWD/config.yaml:/etc/kubewatch/config.yaml:ro -v ~/.kube:/kube:ro \
#     -e KUBECONFIG=/kube/config kubewatch:0.1.0
#
# Two stages: the first builds kubewatch's wheel, the second installs it (and its
# dependencies, all published as binary wheels) into a virtual environment on the same
# slim base. No compiler, pip cache, source tree or wheel file reaches the final image,
# and pip itself is not installed into the environment kubewatch runs from.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kubewatch ./kubewatch
RUN python -m pip wheel . --no-deps --wheel-dir /wheels

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kubewatch" \
      org.opencontainers.image.description="Watch Kubernetes resources and CRDs and deliver normalized change events to Slack, webhooks, stdout and other sinks." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# The fixed non-root identity the Helm chart's securityContext names (runAsUser 10001).
RUN groupadd --system --gid 10001 kubewatch \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kubewatch

# The wheel comes in through a bind mount, so it never becomes part of a layer. The
# environment gets no pip of its own (--without-pip; the base image's pip installs into
# it, then is removed too), and modules are compiled now: the root filesystem is
# read-only at run time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/kubewatch \
 && PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    python -m pip --python /opt/kubewatch/bin/python install --no-warn-script-location /wheels/*.whl \
 && /opt/kubewatch/bin/kubewatch --version \
 && python -m pip uninstall --yes --quiet pip setuptools wheel

ENV PATH=/opt/kubewatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /
ENTRYPOINT ["kubewatch"]
CMD ["run", "--config", "/etc/kubewatch/config.yaml"]
