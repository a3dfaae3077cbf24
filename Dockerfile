# The flannel-ts image for the kube-flannel DaemonSet (dist/kube-flannel-udp.yml,
# dist/kube-flannel-wireguard.yml). Like upstream's image it provides
# /opt/bin/flanneld and /opt/bin/install-conf, the iptables (legacy and nft,
# chosen to match the host by dist/iptables-wrapper.sh) and nft tools the
# traffic rules need, and mk-docker-opts.sh; for the wireguard backend, wg
# (wireguard-tools) and wireguard-go, which runs the devices where the node's
# kernel has no WireGuard module.
#
#   docker build -t ghcr.io/flannel-ts/flanneld:v0.1.0 .
#
# Node: 24 is the current LTS line (the tests run on Node 20; 22 and 24 are
# claimed by package.json "engines", not tested here). The image cannot be
# built on the development machine (no registry access); test/packaging.test.ts
# checks what can be checked without building it.

ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ clang libbpf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/flannel-ts
COPY package.json package-lock.json binding.gyp tsconfig.json ./
COPY native ./native
COPY src ./src
COPY bin ./bin
COPY lab ./lab
COPY bench ./bench
COPY test ./test
COPY dist ./dist
COPY docs ./docs
COPY README.md CHANGELOG.md ./
COPY scripts ./scripts
# `npm ci` builds the addon against the image's own node's headers (package.json
# build:native finds them from the running node) and the TypeScript.
RUN npm ci \
 && node scripts/release.mjs --out /tmp/release \
 && mkdir /opt/release && tar -xzf /tmp/release/flannel-ts-*.tar.gz -C /opt/release

FROM node:${NODE_VERSION}-bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="flannel-ts" \
      org.opencontainers.image.description="flanneld for Kubernetes and etcd clusters: udp (user-space, fast), vxlan, host-gw and wireguard backends" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="https://github.com/flannel-ts/flannel-ts/blob/main/README.md"
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables iproute2 libbpf1 ca-certificates wireguard-tools wireguard-go \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/release/flannel-ts /opt/flannel-ts
# iptables, ip6tables and their -save/-restore go through the wrapper, which
# picks the host's backend; the real tools stay as iptables-legacy/-nft.
RUN for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do \
      ln -sf /opt/flannel-ts/dist/iptables-wrapper.sh "/usr/sbin/$t"; \
    done \
 && mkdir -p /opt/bin \
 && ln -s /opt/flannel-ts/bin/flanneld /opt/bin/flanneld \
 && ln -s /opt/flannel-ts/bin/install-conf /opt/bin/install-conf \
 && ln -s /opt/flannel-ts/dist/mk-docker-opts.sh /opt/bin/mk-docker-opts.sh
ENTRYPOINT ["/opt/bin/flanneld"]
