# Tally's image: one image for every role; the command picks it (`node dist/bin/start.js` by default; the
# roles of a distributed deployment: dist/bin/api.js, dist/bin/ingest.js, dist/bin/worker.js).
# Three stages: the build (all dependencies, tsc) and the production dependencies are made apart, and the
# runtime copies only the compiled dist/ and the production node_modules: no tsx, no TypeScript at run time.
# scripts/image-check.sh runs these same steps without Docker in CI; keep the two in step.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.ts ./scripts/build.ts
COPY core ./core
COPY clickhouse ./clickhouse
COPY control ./control
COPY ingest ./ingest
COPY api ./api
COPY worker ./worker
COPY bin ./bin
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# glibc's allocator, as `npm start` sets it (package.json; docs/operators.md, Memory): buffers of 128 KiB and
# more are mapped and returned on free, and two arenas instead of one per thread.
ENV NODE_ENV=production HOST=0.0.0.0 DATA_DIR=/data MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# node runs as PID 1 with no npm in between, so SIGTERM reaches the service and it drains (bin/runtime.ts).
CMD ["node", "--max-semi-space-size=4", "dist/bin/start.js"]
