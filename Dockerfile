# syntax=docker/dockerfile:1
# One image, two binaries: `storefront` (default command) and `dhmad-sandbox`.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Queries are checked against the committed .sqlx/ data: no database needed to build.
ENV SQLX_OFFLINE=true
COPY . .
# BuildKit cache mounts keep the downloaded crates and the compiled dependencies from one build to
# the next, so a change in src/ recompiles only the workspace's own crates. The mounted target/
# is not part of any layer: the binaries are copied out of it in the same step. `--locked`: the
# versions in Cargo.lock, or the build fails.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p storefront -p dhmad-sandbox --bin storefront --bin dhmad-sandbox \
 && mkdir -p /out \
 && cp target/release/storefront target/release/dhmad-sandbox /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home app
WORKDIR /app
COPY --from=build /out/storefront /out/dhmad-sandbox /usr/local/bin/
COPY static ./static
# The built-in default is the source tree's static/, which only exists in the build stage.
ENV STATIC_DIR=/app/static
# Inside a container, listen on every interface (the built-in defaults are 127.0.0.1). Both
# then refuse to start with what only this machine may reach (the storefront with the demo's
# public secrets, the sandbox at all: its control API has no key) unless LOCAL_ONLY=true,
# resp. SANDBOX_LOCAL_ONLY=true, says the port is published on 127.0.0.1 only, as
# docker-compose.yml does.
ENV LISTEN_ADDR=0.0.0.0:3000 SANDBOX_LISTEN_ADDR=0.0.0.0:6002
USER app
EXPOSE 3000 6002
# The storefront's own probe: GET /readyz on LISTEN_ADDR, exit 0 on a 200 (no curl needed). A
# container running `dhmad-sandbox` from this image needs its own check (docker-compose.yml has it).
# `serve` waits up to 2 minutes for a database that is not up yet (or a held migration lock),
# plus one connection attempt: the start period covers that wait, so an orchestrator that
# replaces unhealthy containers does not kill one still waiting. A first 200 ends it early.
HEALTHCHECK --interval=10s --timeout=5s --start-period=150s --retries=3 \
  CMD ["storefront", "healthcheck"]
CMD ["storefront", "serve"]
