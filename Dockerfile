# syntax=docker/dockerfile:1
# Pushline image: one image for every role (PUSHLINE_ROLE=all|broker|api).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: full install, compile TypeScript to dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# ---- runtime: production dependencies and compiled output only ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PUSHLINE_HOST=0.0.0.0 \
    PUSHLINE_DATA_DIR=/var/lib/pushline
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund
COPY --from=build /app/dist ./dist
# The admin dashboard's static files (served from src/dashboard; tsc does not copy them into dist).
COPY --from=build /app/src/dashboard ./src/dashboard
# Spool and other local files; owned by the unprivileged user so a named
# volume mounted here inherits a writable directory.
RUN mkdir -p /var/lib/pushline && chown node:node /var/lib/pushline
# hadolint ignore=DL3066
USER node
EXPOSE 1883 8083 3000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PUSHLINE_HTTP_PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# A larger young generation: see docs/operations.md, "Node heap".
CMD ["node", "--max-semi-space-size=32", "dist/src/main.js"]
