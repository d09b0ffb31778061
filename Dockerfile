# syntax=docker/dockerfile:1
# TAP proxy image: build with the pinned toolchain, run as a non-root user
# with the data folder on a volume.
#
#   docker build -t tap .
#   docker run -p 3100:3100 -v tap-data:/data tap

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# gcc and make build the bundled SQLite and aws-lc.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ make pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tap \
 && install -m 0755 target/release/tap /usr/local/bin/tap

FROM debian:bookworm-slim AS runtime
# ca-certificates: the system trust store verifies upstream TLS;
# curl: the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tap \
 && useradd --system --uid 10001 --gid tap --home-dir /data --shell /usr/sbin/nologin tap \
 && mkdir -p /data && chown tap:tap /data && chmod 0700 /data
COPY --from=build /usr/local/bin/tap /usr/local/bin/tap
USER tap:tap
WORKDIR /data
ENV TAP_DATA_DIR=/data \
    TAP_LISTEN_ADDR=0.0.0.0:3100 \
    TAP_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 3100
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:3100/health || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tap"]
CMD ["serve"]
