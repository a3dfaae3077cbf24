# The flannel-ts image for the kube-flannel DaemonSet (dist/kube-flannel-udp.yml).
# Like upstream's image it provides /opt/bin/flanneld and /opt/bin/install-conf,
# and the iptables / nft tools the traffic rules need (docs/compatibility.md §8, §11.9).
#
#   docker build -t ghcr.io/flannel-ts/flanneld:v0.1.0 .

FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/flannel-ts
COPY package.json package-lock.json .npmrc binding.gyp tsconfig.json ./
COPY native ./native
COPY src ./src
COPY bin ./bin
COPY lab ./lab
COPY bench ./bench
COPY test ./test
# node-gyp finds the headers of the image's own node; `npm ci` builds the addon and the TypeScript.
ENV npm_config_nodedir=/usr/local
RUN npm ci && npm prune --omit=dev && rm -rf native/*/*.o build/Release/obj.target test lab bench out/test out/lab out/bench

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/flannel-ts /opt/flannel-ts
RUN mkdir -p /opt/bin \
 && ln -s /opt/flannel-ts/bin/flanneld /opt/bin/flanneld \
 && ln -s /opt/flannel-ts/bin/install-conf /opt/bin/install-conf
ENTRYPOINT ["/opt/bin/flanneld"]
