# tasklog: one image for both roles, `tasklog serve` (the log proxy, the default) and
# `tasklog agent` (on the workers). How to build and run it: deploy/README.md.
#
#   docker build -t tasklog .
#   docker run --rm --init --read-only --tmpfs /tmp -v tasklog-home:/var/lib/tasklog \
#     -p 127.0.0.1:8794:8794 tasklog serve --insecure-no-auth
#
# No container engine runs where this is developed: test/deploy/dockerfile.test.ts runs this
# file's build and start steps as plain commands in a temporary folder instead. It reads the
# steps from here, so keep RUN steps to relative paths and ENV variables.

ARG NODE_IMAGE=node:20-bookworm-slim

# 1. Build the workspace with pnpm and pack the three packages; `pnpm pack` turns the
#    `workspace:*` dependencies into the packages' own versions.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY . .
RUN npx -y pnpm@12.4.2 install --frozen-lockfile
RUN npx -y pnpm@12.4.2 build
RUN npx -y pnpm@12.4.2 --filter @tasklog/core --filter @tasklog/server --filter @tasklog/cli \
      pack --pack-destination "$PWD/tarballs"

# 2. Install the tarballs with npm alone, as a user outside a clone would. better-sqlite3 builds
#    (or downloads) its native module in its install script; npm 11 asks to allow it by name.
FROM ${NODE_IMAGE} AS install
WORKDIR /build
COPY --from=build /src/tarballs/ ./tarballs/
ENV TASKLOG_PREFIX=/opt/tasklog
RUN npm install --global --prefix "$TASKLOG_PREFIX" --no-audit --no-fund \
      --allow-scripts=better-sqlite3,protobufjs ./tarballs/*.tgz \
 && mkdir -p ./home

# 3. tini, so that the process gets signals and children are reaped (or `docker run --init`).
FROM ${NODE_IMAGE} AS tini
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

# 4. The image: no pnpm, no npm run at start, nothing written outside TASKLOG_HOME and /tmp,
#    so it runs with a read-only root filesystem (`--read-only --tmpfs /tmp`).
FROM ${NODE_IMAGE} AS runtime
COPY --from=tini /usr/bin/tini /usr/bin/tini
COPY --from=install /opt/tasklog /opt/tasklog
COPY --from=install --chown=10001:10001 /build/home/ /var/lib/tasklog/
COPY deploy/docker/healthcheck.mjs /opt/tasklog/healthcheck.mjs
ENV PATH=/opt/tasklog/bin:$PATH \
    NODE_ENV=production \
    TASKLOG_HOME=/var/lib/tasklog \
    HOME=/var/lib/tasklog \
    TMPDIR=/tmp \
    TASKLOG__SERVER__HOST=0.0.0.0 \
    TASKLOG__AGENT__HOST=0.0.0.0
VOLUME ["/var/lib/tasklog"]
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /var/lib/tasklog
EXPOSE 8794 8795
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/opt/tasklog/healthcheck.mjs"]
ENTRYPOINT ["/usr/bin/tini", "--", "tasklog"]
CMD ["serve"]
