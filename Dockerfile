# syntax=docker/dockerfile:1
#
# node-local-dns image: the agent on Node.js 24, iptables (legacy and nft back ends,
# picked at run time by docker/iptables-wrapper.sh), nftables and iproute2.
#
#   docker build -t node-local-dns:0.1.0 .
#
# npm test builds this file with podman and runs the image on a simulated node
# (test/image/image.test.ts; size and build time in docs/operations.md).
# Build stages (deps, the native addon, the production bundle) go before the runtime stage,
# FROM ${NODE_IMAGE} like the others, their output taken with COPY --from.
#
# The base is the official Node.js image; pin it by digest in your registry mirror
# with --build-arg NODE_IMAGE=node:24-slim@sha256:... for reproducible builds.
ARG NODE_IMAGE=node:24-slim

# --- production dependencies only (no compiler needed: all are pure JavaScript) ---
# There are none today (prom-client is a dev dependency: the running agent writes its metrics
# itself); npm ci then creates no node_modules, hence the mkdir.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && mkdir -p node_modules \
    && npm cache clean --force

# --- the batched UDP addon (native/udp.c, Node-API + libuv; native/README.md) ---
# Compiled against the base image's own Node headers (/usr/local/include/node); only the
# .node file reaches the runtime stage. NODE_LOCAL_DNS_REQUIRE_ADDON=1: a failed build fails
# the image build instead of shipping an image that serves UDP through dgram.
FROM ${NODE_IMAGE} AS addon
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm install --no-save --ignore-scripts --no-audit --no-fund "node-gyp@$(node -p "require('./package-lock.json').packages['node_modules/node-gyp'].version")"
COPY binding.gyp ./
COPY native/build.mjs native/udp.c native/fdpass.c ./native/
RUN NODE_LOCAL_DNS_REQUIRE_ADDON=1 NODE_LOCAL_DNS_NODEDIR=/usr/local node native/build.mjs

# --- the production bundle (docker/bundle.mjs): bin/ and src/ built by esbuild into ES modules,
# split at every lazy import (the on-demand plugins stay unloaded until a Corefile names them).
# Idles ~9 MiB lower and starts faster than the type-stripped TypeScript (bench/PROFILE.md,
# Footprint). esbuild at the lockfile's version, installed into a directory without
# package.json (so npm installs nothing else); nothing of this stage but bin/ and dist/ ships.
FROM ${NODE_IMAGE} AS bundle
WORKDIR /build
COPY package-lock.json /tmp/package-lock.json
RUN npm install --no-save --no-package-lock --ignore-scripts --no-audit --no-fund "esbuild@$(node -p "require('/tmp/package-lock.json').packages['node_modules/esbuild'].version")"
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY docker/bundle.mjs ./docker/
RUN node docker/bundle.mjs /build/out

# --- runtime ---
FROM ${NODE_IMAGE} AS runtime

# iptables: Debian's package carries both back ends (iptables-legacy*, iptables-nft*).
# iproute2: `ip` for the nodelocaldns interface.
# apt-get clean and the lists: nothing of apt's caches stays in the layer, whatever the
# base's apt.conf.d says (debian:*-slim's docker-clean does the same).
# npm, npx and corepack are not needed at run time. Deleting them keeps their
# advisories out of scans of the final filesystem; the bytes stay in the shared base
# layer, so this does not make the image smaller.
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables iproute2 nftables \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
              /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack

# iptables, iptables-save, iptables-restore (and ip6tables*) resolve to the wrapper
# until its first run points them at the back end the node uses.
COPY --chmod=0755 docker/iptables-wrapper.sh /usr/sbin/iptables-wrapper
RUN iptables-wrapper --install
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/node-local-dns-entrypoint

WORKDIR /app
ENV NODE_ENV=production
# Node's compile cache (V8 code of the bundle's modules), warmed at build time (bench/PROFILE.md).
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache
# Caps V8's young generation (Node 24 lets it grow to 128 MiB): under a flood of misses over
# TCP the peak RSS was 230 MiB, near the manifests' 256 MiB limit; with the cap 138 MiB at the
# same throughput (bench/PROFILE.md); 4 MiB semi-spaces (not 16) save ~5 MiB with 10,000 cached
# names at no measured throughput cost (bench/PROFILE.md, Footprint). Caps the old generation at 128 MiB, the V8 heap's share
# of the 256 MiB limit (the rest: ~75 MiB binary, code and native baseline, the cache's byte
# arena, socket buffers): without it V8 sizes its heap from the cgroup (259 MiB here) and grows
# it lazily, so the hostile mixed run (test/hostile) peaked at 217 MiB, with it 158 MiB.
# Same flags as `npm start` and bin/node-local-dns.js (test/deploy/docker.test.ts).
ENV NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=128"
COPY --from=deps /app/node_modules ./node_modules
# package.json: "type": "module" for the bundle's .js files, and the version the agent reports.
COPY package.json ./
# bin/node-local-dns.js (the bundled entry) and dist/ (its chunks and the worker script). The
# bundle finds the addon at ../build/Release/udp.node from dist/, as src/server/udp-native.ts does.
COPY --from=bundle /build/out/bin ./bin
COPY --from=bundle /build/out/dist ./dist
COPY --from=addon /build/build/Release/udp.node ./build/Release/udp.node
# Every chunk and the worker script (chunks have no side effects; the worker script runs only
# in a worker), so a lazily imported plugin is compiled from the cache too; no list to keep.
RUN node --input-type=module -e "import { enableCompileCache } from 'node:module'; import { readdirSync } from 'node:fs'; enableCompileCache(process.env.NODE_COMPILE_CACHE); for (const f of readdirSync('/app/dist').filter((f) => f.endsWith('.js')).sort()) await import('/app/dist/' + f);"

# 53: DNS; 8080: health plugin; 8181: ready plugin; 9253: prometheus plugin;
# 9353: the agent's own setup metrics. The pod runs with hostNetwork, so these are
# informational only.
EXPOSE 53/udp 53/tcp 8080/tcp 8181/tcp 9253/tcp 9353/tcp

# Exec form: the entrypoint execs the agent, which is then PID 1 and gets SIGTERM.
# No HEALTHCHECK: kubelet probes /health and /ready (see deploy/kubernetes).
ENTRYPOINT ["/usr/local/bin/node-local-dns-entrypoint"]
CMD ["-localip", "169.254.20.10", "-conf", "/etc/Corefile", "-upstreamsvc", "kube-dns-upstream"]
