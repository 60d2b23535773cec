#!/bin/sh
# One round of the soak's VM traffic (busybox sh in the test VM): a download, an upload,
# connection churn, DNS queries and a UDP exchange, all at once. Prints "@" lines that the host
# judges (bench/src/soak/vm-traffic.ts); nothing here decides pass or fail.
# usage: soak.sh HOST HTTP_PORT UDP_PORT GATEWAY TOKEN DL_SIZE DL_SEED UL_SIZE CHURN UDP_N NAME...
host=$1 port=$2 udpport=$3 gw=$4 token=$5 dlsize=$6 dlseed=$7 ulsize=$8 nchurn=$9
shift 9
nudp=$1
shift
base="http://$host:$port"
t=/tmp/r$token
mkdir -p "$t"

firstline() { head -c 200 "$1" | tr '\n' ' '; }

download() {
  if timeout 90 wget -q -O "$t/dl" "$base/bytes/$dlsize/$dlseed" 2>"$t/dl.err"; then
    echo "@DL $(sha256sum <"$t/dl" | cut -d' ' -f1) $(wc -c <"$t/dl")"
  else
    echo "@DL fail $(firstline "$t/dl.err")"
  fi
  rm -f "$t/dl"
}

upload() {
  # busybox wget sends --post-file as a C string (up to the first NUL): base64, no NULs.
  head -c "$ulsize" /dev/urandom | base64 >"$t/ul"
  want=$(sha256sum <"$t/ul" | cut -d' ' -f1)
  # The host's server answers "<sha256> <bytes>" of what it received.
  if got=$(timeout 90 wget -q -O - --post-file "$t/ul" "$base/upload" 2>"$t/ul.err"); then
    echo "@UL $want $(wc -c <"$t/ul") $got"
  else
    echo "@UL fail $(firstline "$t/ul.err")"
  fi
}

# Many short connections: busybox wget opens one per request and closes it.
churn() {
  ok=0 bad=0 failed=0 i=0 err=
  while [ "$i" -lt "$nchurn" ]; do
    i=$((i + 1))
    if got=$(timeout 15 wget -q -O - "$base/hello/$token-$i" 2>"$t/c.err"); then
      if [ "$got" = "hello $token-$i" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
    else
      failed=$((failed + 1))
      [ -n "$err" ] || err=$(firstline "$t/c.err")
    fi
  done
  echo "@CHURN $ok $bad $failed $err"
}

dns() {
  for name in "$@"; do
    out=$(timeout 15 nslookup -type=a "$name" "$gw" 2>&1)
    if echo "$out" | grep -q NXDOMAIN; then
      got=NXDOMAIN
    else
      got=$(echo "$out" | awk '/^Name:/ { n = 1 } n && /^Address/ { print $2 }' | sort | tr '\n' ',' | sed 's/,$//')
    fi
    echo "@DNS $name ${got:--}"
  done
}

# One flow, a datagram every 50 ms (so each line is its own datagram); socat waits 3 s for the
# last echoes after its input ends.
udp() {
  i=0
  (while [ "$i" -lt "$nudp" ]; do i=$((i + 1)); echo "$token-$i"; usleep 50000; done) |
    timeout 30 socat -t 3 - "UDP:$host:$udpport" >"$t/udp" 2>"$t/udp.err"
  echo "@UDP $(tr '\n' ' ' <"$t/udp")"
}

download &
upload &
churn &
dns "$@" &
udp &
wait
rm -rf "$t"
echo "@DONE"
