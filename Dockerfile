# syntax=docker/dockerfile:1
# The service for production: PostgreSQL (DATABASE_URL) and Redis (REDIS_URL).
# docker-compose.yml runs it with both, two replicas behind one port.

# --- 1. Build: every dependency, then compile TypeScript into dist/ -----------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts are skipped: `prepare` compiles the sources, which are not copied yet.
# npm's download cache is a build cache, kept out of every layer.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY drizzle ./drizzle
# The PGlite seed that `npm run build` also makes only speeds up a first start
# on embedded storage, which this image is not for: it stays out (about 44 MB).
RUN npm run build && rm -rf dist/pglite-seed dist/pglite-seed.tar.gz

# --- 2. Run: production dependencies only, as an unprivileged user ------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /app/dist ./dist
COPY drizzle ./drizzle
COPY web ./web
# Only DATA_DIR (embedded storage, outside production) is ever written to.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 8000
# No curl in slim images: Node's own fetch asks /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# As `npm run start:postgres`, without npm in between (signals reach node directly).
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=50", "dist/server.js"]
