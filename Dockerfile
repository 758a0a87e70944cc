# syntax=docker/dockerfile:1
# KBS container image: build stage (TypeScript and the native modules sqlite3 / pkcs11js), then a
# slim runtime as a non-root user that works with a read-only root filesystem: it writes only to
# the data volume /var/lib/kbs (work_dir) and, if the runtime mounts one, a tmpfs on /tmp.
#   docker build -t kbs:local .                                # LocalFs / SQLite / any PKCS#11 module you mount
#   docker build -t kbs:softhsm --build-arg WITH_SOFTHSM=1 .  # also ships SoftHSM2 (tests, demos)

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY attestation ./attestation
COPY backends ./backends
COPY cli ./cli
COPY config ./config
COPY policy ./policy
COPY server ./server
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ARG WITH_SOFTHSM=0
RUN if [ "$WITH_SOFTHSM" = "1" ]; then \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends softhsm2 \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --system --gid 10001 kbs \
 && useradd --system --uid 10001 --gid kbs --home-dir /var/lib/kbs --shell /usr/sbin/nologin kbs \
 && mkdir -p /var/lib/kbs /etc/kbs/tls /var/lib/softhsm/tokens \
 && chown kbs:kbs /var/lib/kbs /etc/kbs/tls /var/lib/softhsm/tokens \
 && chmod 0700 /var/lib/kbs
WORKDIR /opt/kbs
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/policy/samples ./policy/samples
COPY config/kbs-config-container.toml /etc/kbs/kbs-config.toml
USER 10001:10001
VOLUME ["/var/lib/kbs"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["node", "dist/cli/healthcheck.js"]
ENTRYPOINT ["node", "dist/cli/kbs.js"]
CMD ["serve", "--config-file", "/etc/kbs/kbs-config.toml"]
