# mcp-tap: build with the Rust toolchain, run on a minimal non-root image.
#   docker build -t mcp-tap .
#   docker run -p 7070:7070 -p 9464:9464 -e MCP_TAP_UPSTREAM=https://backstage.example.com mcp-tap

FROM rust:1.88-slim-bookworm AS build
WORKDIR /src
# make: the jemalloc allocator is built from its C sources.
RUN apt-get update && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
# Dependencies first, so code changes do not rebuild them. .cargo holds jemalloc's settings.
COPY .cargo ./.cargo
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin mcp-tap \
    && mkdir -p /state

# distroless/cc: glibc, CA certificates, a nonroot user (65532), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mcp-tap /usr/local/bin/mcp-tap
COPY config/mcp-tap.container.yaml /etc/mcp-tap/config.yaml
# Token ages and least-privilege history (checklist.state_dir): mount a volume to keep them.
COPY --from=build --chown=65532:65532 /state /var/lib/mcp-tap
VOLUME /var/lib/mcp-tap
ENV MCP_TAP_CONFIG=/etc/mcp-tap/config.yaml
USER 65532:65532
EXPOSE 7070 9464
ENTRYPOINT ["mcp-tap"]
