# One image, two binaries: `storefront` (default command) and `dhmad-sandbox`.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Queries are checked against the committed .sqlx/ data: no database needed to build.
ENV SQLX_OFFLINE=true
COPY . .
RUN cargo build --release --locked --bin storefront --bin dhmad-sandbox

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home app
WORKDIR /app
COPY --from=build /src/target/release/storefront /src/target/release/dhmad-sandbox /usr/local/bin/
COPY static ./static
# The built-in default is the source tree's static/, which only exists in the build stage.
ENV STATIC_DIR=/app/static
USER app
EXPOSE 3000 6002
CMD ["storefront", "serve"]
