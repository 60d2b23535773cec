#!/bin/sh
# Regenerates the real DHCP exchanges in test/fixtures/dhcp.ts (run as root; needs iproute2,
# dnsmasq-base, busybox-static and tcpdump). Two namespaces joined by a veth pair: dnsmasq
# serves 10.77.0.0/24 in one, busybox udhcpc asks for a lease in the other, tcpdump records
# the server side. Prints one hex line per captured frame. Nothing leaves the namespaces.
set -eu
P="dtd-dhcpcap-$$"
SRV="$P-s"; CLI="$P-c"
DIR=$(mktemp -d)
cleanup() {
  [ -f "$DIR/dnsmasq.pid" ] && kill "$(cat "$DIR/dnsmasq.pid")" 2>/dev/null || true
  [ -f "$DIR/tcpdump.pid" ] && kill "$(cat "$DIR/tcpdump.pid")" 2>/dev/null || true
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

ip netns add "$SRV"; ip netns add "$CLI"
ip link add dtdcs0 netns "$SRV" type veth peer name dtdcc0 netns "$CLI"
ip -n "$SRV" link set dtdcs0 address 02:00:00:00:00:01
ip -n "$CLI" link set dtdcc0 address 02:00:00:00:00:02
ip -n "$SRV" addr add 10.77.0.1/24 dev dtdcs0
ip -n "$SRV" link set dtdcs0 up; ip -n "$CLI" link set dtdcc0 up
ip -n "$SRV" link set lo up; ip -n "$CLI" link set lo up

ip netns exec "$SRV" tcpdump -i dtdcs0 -U -w "$DIR/dhcp.pcap" -s 0 'udp port 67 or udp port 68' \
  >/dev/null 2>&1 & echo $! >"$DIR/tcpdump.pid"
ip netns exec "$SRV" dnsmasq --no-daemon --no-resolv --no-hosts --port=0 --interface=dtdcs0 \
  --bind-interfaces --dhcp-range=10.77.0.50,10.77.0.60,255.255.255.0,1h \
  --dhcp-option=option:router,10.77.0.1 --dhcp-option=option:dns-server,10.77.0.1 \
  --dhcp-option=option:domain-search,home.arpa,example.test --dhcp-option=option:mtu,1400 \
  --dhcp-leasefile="$DIR/leases" >"$DIR/dnsmasq.log" 2>&1 & echo $! >"$DIR/dnsmasq.pid"
sleep 2

# The script configures the address so that the renewal below can go out by unicast.
cat >"$DIR/script" <<'S'
#!/bin/sh
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
ip addr replace "$ip/$mask" dev "$interface"
S
chmod +x "$DIR/script"

# 1) DISCOVER/OFFER/REQUEST/ACK.
ip netns exec "$CLI" busybox udhcpc -f -q -n -i dtdcc0 -s /bin/true \
  -x hostname:guest1 -O search -O mtu >/dev/null 2>&1
sleep 1
# 2) Bound, then a unicast renewal (SIGUSR1): REQUEST with ciaddr set, and its ACK; then
#    SIGUSR2 releases the lease (RELEASE, unicast from the bound address).
ip netns exec "$CLI" busybox udhcpc -f -n -R -i dtdcc0 -s "$DIR/script" \
  -x hostname:guest1 -O search -O mtu >/dev/null 2>&1 &
UPID=$!
sleep 3
kill -USR1 "$UPID"; sleep 2
kill -USR2 "$UPID"; sleep 1
kill "$UPID"; wait "$UPID" 2>/dev/null || true
# 3) Broadcast flag set (-B), no client id (-C), no parameter request list (-o).
ip -n "$CLI" addr flush dev dtdcc0
ip netns exec "$CLI" busybox udhcpc -f -q -n -B -C -o -i dtdcc0 -s /bin/true >/dev/null 2>&1
sleep 1
kill "$(cat "$DIR/tcpdump.pid")"; sleep 1
tcpdump -r "$DIR/dhcp.pcap" -nn -v >&2 2>/dev/null
tcpdump -r "$DIR/dhcp.pcap" -nn -xx 2>/dev/null | awk '
  /^[0-9]/ { if (hex) print hex; hex = "" ; next }
  { for (i = 2; i <= NF; i++) hex = hex $i }
  END { if (hex) print hex }'
