# trendstream: build with the Rust toolchain, run on a slim Debian.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY config config
COPY src src
RUN cargo build --release --locked && cp target/release/trendstream /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/trendstream /usr/local/bin/trendstream
ENTRYPOINT ["trendstream"]
CMD ["run"]
