# gophercap in a container: `docker build -t gophercap .` (or `podman build`).
#
# Both base images are build arguments, so a build that cannot pull them can name local ones
# (tests/container/run.sh builds this file on bases it makes from Debian packages).
# Behind a TLS-intercepting proxy, give the proxy's CA bundle as a build secret and cargo trusts
# it beside the system roots:
#   docker build --secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt -t gophercap .
#
# The image runs as uid 0 and sets no file capability: it may do what the runtime grants, and a
# capture needs NET_RAW alone (README, "Sidecar").

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpcap-dev pkg-config \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# One layer: the target folder and the downloaded crates go before it is written, so the layer
# holds the binary alone. The image's binary has no line tables (less than a third of the size
# with them; backtraces still name functions).
RUN --mount=type=secret,id=cacert \
    set -eu; \
    if [ -s /run/secrets/cacert ]; then \
        cat /etc/ssl/certs/ca-certificates.crt /run/secrets/cacert > /tmp/cacert.pem 2>/dev/null \
            || cp /run/secrets/cacert /tmp/cacert.pem; \
        export CARGO_HTTP_CAINFO=/tmp/cacert.pem SSL_CERT_FILE=/tmp/cacert.pem; \
    fi; \
    CARGO_PROFILE_RELEASE_DEBUG=none CARGO_PROFILE_RELEASE_STRIP=debuginfo \
        cargo build --release --locked; \
    install -m 0755 target/release/gophercap /usr/local/bin/gophercap; \
    rm -rf target /tmp/cacert.pem "${CARGO_HOME:-$HOME/.cargo}/registry"

FROM ${RUNTIME_IMAGE}
# Keep in step with Cargo.toml (tests/container/run.sh checks them); the source is the
# repository this image is built from, given with --build-arg SOURCE_URL=...
ARG VERSION=0.1.0
ARG LICENSES="MIT OR Apache-2.0"
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="gophercap" \
      org.opencontainers.image.description="Offline-first pcap toolkit: map, replay, extract, flows, http-trace and tap over one capture core" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.source="${SOURCE_URL}"
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpcap0.8 ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/gophercap /usr/local/bin/gophercap
# uid 0 on purpose: with `capabilities: {drop: [ALL], add: [NET_RAW]}` and
# `allowPrivilegeEscalation: false` only uid 0 keeps NET_RAW across exec in a cluster runtime.
USER 0:0
WORKDIR /
ENTRYPOINT ["gophercap"]
CMD ["--help"]
