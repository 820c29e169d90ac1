# A minimal image: a static (musl) binary in an empty root, running as nobody.
#   docker build -t fluxbase-exporter .
# make static builds the same binary outside a container.

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
ENV CC_x86_64_unknown_linux_musl=musl-gcc
RUN cargo build --release --locked --target x86_64-unknown-linux-musl

FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/fluxbase-exporter /fluxbase-exporter
USER 65534:65534
EXPOSE 9745
# The binary is its own health probe: exit 0 on a 2xx answer within 5 s (no curl in the image).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["/fluxbase-exporter", "healthcheck"]
ENTRYPOINT ["/fluxbase-exporter"]
