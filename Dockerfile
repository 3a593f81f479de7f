# syntax=docker/dockerfile:1.7
# FileOrganizer Pro container images (see docs/deploy.md).
#
#   docker build -t fileorganizer .                        # `app` (default): fileorg serve / worker
#   docker build --target envoy -t fileorganizer-envoy .   # the REST / grpc-web front door
#
# The app image carries the browser console (console/dist, built in the `console` stage) and
# serves it when CONSOLE_ADDR is set (docker-compose.yml and deploy/k8s do).
# Both images come out of one build: the Envoy image carries the descriptor written by the very
# `fileorg` binary of the app image (`fileorg descriptor`) and a container variant of
# envoy/envoy.yaml rendered from that file by substitution, so the two can never drift.
# scripts/lint-deploy.sh lints this file (hadolint) and checks that the substitutions below are
# the ones it validates with a real Envoy.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.77
ARG NODE_VERSION=22

# ---------------------------------------------------------------- Rust toolchain + cargo-chef
FROM rust:${RUST_VERSION}-slim-trixie AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
# Profile settings live here so the dependency layer and the final build agree on them.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never
WORKDIR /src

# ---------------------------------------------------------------- dependency recipe
FROM chef AS planner
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN cargo chef prepare --recipe-path recipe.json

# ---------------------------------------------------------------- build
FROM chef AS builder
# Dependencies only: this layer is rebuilt only when Cargo.toml / Cargo.lock change.
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin fileorg
# The service itself. Migrations are embedded in the binary (diesel embed_migrations!).
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY migrations ./migrations
COPY src ./src
# The commit for fileorg_build_info (the context has no .git): `docker build --build-arg
# GIT_SHA=$(git rev-parse HEAD) .`; without it the metric says "unknown".
ARG GIT_SHA=unknown
RUN FILEORG_GIT_SHA="${GIT_SHA}" cargo build --release --locked --bin fileorg \
    && install -D -m 0755 target/release/fileorg /out/bin/fileorg \
    && install -d -m 0750 /out/data/storage \
    && /out/bin/fileorg --version

# ---------------------------------------------------------------- browser console (static files)
# The console (console/, vite) and the TypeScript SDK it is built on, exactly as `npm run build`
# builds them locally; only console/dist reaches the app image. The REST docs page's files
# (console/dist/api-docs, with a copy of sdk/openapi/openapi.json) come with it.
FROM node:${NODE_VERSION}-trixie-slim AS console
WORKDIR /src
COPY package.json package-lock.json ./
COPY sdk/typescript/package.json sdk/typescript/package.json
COPY console/package.json console/package.json
RUN npm ci --no-audit --no-fund --loglevel=error
COPY sdk/typescript ./sdk/typescript
COPY sdk/openapi/openapi.json ./sdk/openapi/openapi.json
COPY console ./console
RUN npm run build --silent \
    && test -f console/dist/index.html \
    && test -f console/dist/api-docs/openapi.json

# ---------------------------------------------------------------- Envoy config + descriptor
FROM builder AS envoy-config
# ENVOY_UPSTREAM_HOST: where the tonic server is (the compose service `app`), and its console
# listener (CONSOLE_ADDR, port 8081), which serves the REST docs page.
ARG ENVOY_UPSTREAM_HOST=app-upstream
# ENVOY_SOURCE_ADDRESS: where Envoy connects from. In a pod it is 127.0.0.2 (the address the server
# trusts); in its own container any address will do (compose gives it a fixed one, trusted by app).
ARG ENVOY_SOURCE_ADDRESS=0.0.0.0
ARG ENVOY_DESCRIPTOR=/etc/envoy/fileorganizer.pb
ARG ENVOY_OPENAPI=/etc/envoy/openapi.json
COPY envoy/envoy.yaml envoy/envoy.yaml
COPY sdk/openapi/openapi.json /out/envoy/openapi.json
# The public listener binds every interface, the upstream is a DNS name (STRICT_DNS), the files
# Envoy reads get absolute paths (the descriptor is the one `fileorg descriptor` writes); the
# admin listener stays on loopback.
RUN /out/bin/fileorg descriptor --out /out/envoy/fileorganizer.pb \
    && sed \
        -e "s|address: 127.0.0.1, port_value: 8080|address: 0.0.0.0, port_value: 8080|" \
        -e "s|address: 127.0.0.1, port_value: 50051|address: ${ENVOY_UPSTREAM_HOST}, port_value: 50051|" \
        -e "s|address: 127.0.0.1, port_value: 8081|address: ${ENVOY_UPSTREAM_HOST}, port_value: 8081|" \
        -e "s|type: STATIC|type: STRICT_DNS|" \
        -e "s|proto_descriptor: envoy/fileorganizer.pb|proto_descriptor: ${ENVOY_DESCRIPTOR}|" \
        -e "s|filename: sdk/openapi/openapi.json|filename: ${ENVOY_OPENAPI}|" \
        -e "s|source_address: { address: 127.0.0.2|source_address: { address: ${ENVOY_SOURCE_ADDRESS}|" \
        envoy/envoy.yaml >/out/envoy/envoy.yaml

# ---------------------------------------------------------------- Envoy image
FROM envoyproxy/envoy:v1.40.0 AS envoy
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="fileorganizer-envoy" \
      org.opencontainers.image.description="Envoy front door for FileOrganizer Pro: REST transcoding, grpc-web and native gRPC on :8080" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=envoy-config /out/envoy/envoy.yaml /out/envoy/fileorganizer.pb /out/envoy/openapi.json /etc/envoy/
# Fail the build, not the deployment, if the rendered config does not load.
RUN ["envoy", "--mode", "validate", "-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"]
EXPOSE 8080
# The image's entrypoint drops to the unprivileged `envoy` user (uid 101) before starting Envoy.
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml"]

# ---------------------------------------------------------------- runtime (default target)
# distroless/cc: glibc, libgcc, CA certificates and a `nonroot` user (65532); no shell.
FROM gcr.io/distroless/cc-debian13:nonroot AS app
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="fileorganizer" \
      org.opencontainers.image.description="FileOrganizer Pro: a multi-tenant gRPC service that organizes users' files" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=builder /out/bin/fileorg /usr/local/bin/fileorg
COPY --from=builder --chown=65532:65532 /out/data /var/lib/fileorg
# The browser console's files, read-only, owned by root.
COPY --from=console /src/console/dist /usr/share/fileorg/console
# CONSOLE_DIR points at the console; `fileorg serve` serves it once CONSOLE_ADDR (e.g.
# 0.0.0.0:8081) is set together with CONSOLE_API_URL (the grpc-web origin browsers reach, which
# only the deployment knows) and CORS_ORIGINS (the console's own origin). docker-compose.yml and
# deploy/k8s set all three; without CONSOLE_ADDR the server serves no console.
ENV ENVIRONMENT=production \
    GRPC_ADDR=0.0.0.0:50051 \
    DATA_DIR=/var/lib/fileorg \
    STORAGE_ROOT=/var/lib/fileorg/storage \
    CONSOLE_DIR=/usr/share/fileorg/console \
    RUST_LOG=info
USER 65532:65532
WORKDIR /var/lib/fileorg
VOLUME ["/var/lib/fileorg/storage"]
# 50051: gRPC, grpc-web, health; 8081: the browser console (when CONSOLE_ADDR is set).
EXPOSE 50051 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/fileorg", "healthcheck", "--addr", "127.0.0.1:50051", "--timeout", "3"]
ENTRYPOINT ["/usr/local/bin/fileorg"]
CMD ["serve"]
