#!/usr/bin/env bash
# The Debian packages the end-to-end tests drive as real peers. `npm test` calls this first:
# as root with apt-get it installs what is missing; otherwise it says what is missing.
# qemu-system-x86 and linux-image-cloud-amd64 are for the test VMs: that kernel boots inside qemu only.
# slirp4netns and passt are the benchmark's peers (npm run bench calls this too).
# chromium (with a font) is the real browser the status page is tested in.
# tinyproxy and microsocks are the real upstream proxies @desktopd/proxy chains to.
# openssh-server gives sshd for the SSH agent tests (started by the tests on loopback, never as a service).
set -euo pipefail
PACKAGES=(iproute2 iputils-ping busybox-static curl socat nftables iperf3 tcpdump python3 dnsmasq-base bind9-dnsutils hping3 qemu-system-x86 linux-image-cloud-amd64 xz-utils dnsperf faketime slirp4netns passt chromium fonts-dejavu-core tinyproxy microsocks openssh-server openssh-client)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing test dependencies: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages install services (sshd): none is started here, the tests start their own.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi
else
  echo "warning: end-to-end tests need these Debian packages: ${missing[*]} (run as root to install them)" >&2
fi
