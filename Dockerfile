# trendstream: build with the Rust toolchain, run on a slim Debian as a non-root user.
# Base images are pinned by version; pin them by digest too where your registry policy asks.
FROM rust:1.95.0-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Everything the manifest names must be here (Cargo refuses a declared bench target that is
# missing). CI builds from exactly these files: scripts/docker-context.sh.
COPY Cargo.toml Cargo.lock ./
COPY config config
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin trendstream && cp target/release/trendstream /usr/local/bin/

FROM debian:12.12-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin trendstream
COPY --from=build /usr/local/bin/trendstream /usr/local/bin/trendstream
USER 10001
# Alive while the HTTP endpoint answers (TRENDSTREAM_HTTP__LISTEN must be set, as in compose).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["trendstream", "health", "--addr", "127.0.0.1:9898", "--path", "/healthz"]
ENTRYPOINT ["trendstream"]
CMD ["run"]
