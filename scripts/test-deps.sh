#!/usr/bin/env bash
# The Debian packages the end-to-end tests drive as real peers. `npm test` calls this first:
# as root with apt-get it installs what is missing; otherwise it says what is missing.
# qemu-system-x86 and linux-image-cloud-amd64 are for the test VMs: that kernel boots inside qemu only.
# slirp4netns and passt are the benchmark's peers (npm run bench calls this too).
# chromium (with a font) is the real browser the status page is tested in.
# tinyproxy and microsocks are the real upstream proxies @desktopd/proxy chains to.
set -euo pipefail
PACKAGES=(iproute2 iputils-ping busybox-static curl socat nftables iperf3 tcpdump python3 dnsmasq-base bind9-dnsutils hping3 qemu-system-x86 linux-image-cloud-amd64 xz-utils dnsperf faketime slirp4netns passt chromium fonts-dejavu-core tinyproxy microsocks)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing test dependencies: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "warning: end-to-end tests need these Debian packages: ${missing[*]} (run as root to install them)" >&2
fi
