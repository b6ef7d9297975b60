#!/bin/bash
# Server CPU per query: a cached public answer (through [resolver] upstreams) beside a private answer, in one run.
#
#   bash benches/resolver.sh            # DUR=10 seconds per side
#
# BIND 9 serves the "public" zone example. on a loopback port as the upstream; vpcdns serves corp.internal. to one
# VPC (127.100.0.0/24) and resolves www.example through the upstream. After one warm-up query the public name is
# in the cache, so every measured public query is a cache hit. dnsperf sends each side's queries from the VPC source;
# the figure is the vpcdns process's CPU time (utime + stime of every thread, from /proc) over the queries it
# answered. The target: cached public ≤ 1.5 × private. Everything stays on loopback; servers are stopped by PID.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WD=${WORKDIR:-/tmp/vpcdns-resolver-bench}
DUR=${DUR:-10}
VPCDNS=$ROOT/target/release/vpcdns
PORT_UP=5390; PORT_V=5391
HZ=$(getconf CLK_TCK)
mkdir -p "$WD"

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

for b in dnsperf named dig bc; do
    command -v $b >/dev/null || command -v /usr/sbin/$b >/dev/null || {
        log "installing dnsperf bind9 bind9-dnsutils bc"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf bind9 bind9-dnsutils bc >/dev/null
        break
    }
done
export PATH="$PATH:/usr/sbin"
(cd "$ROOT" && cargo build --release --quiet) || die "cargo build failed"

cat > "$WD/example.zone" <<'EOF'
$TTL 86400
@ SOA ns.example. hostmaster.example. 1 3600 600 86400 60
@ NS ns.example.
ns A 127.0.0.1
www A 192.0.2.10
EOF
cat > "$WD/named.conf" <<EOF
options { directory "$WD"; pid-file "$WD/named.pid"; listen-on port $PORT_UP { 127.0.0.1; }; listen-on-v6 { none; };
  recursion no; dnssec-validation no; notify no; };
controls { };
zone "example." { type primary; file "$WD/example.zone"; };
EOF
cat > "$WD/vpcdns.toml" <<EOF
[server]
listen = ["127.0.0.1:$PORT_V"]
[limits]
queries_per_source = 0
[resolver]
upstreams = ["127.0.0.1:$PORT_UP"]
[[accounts]]
uid = "1"
name = "acme"
email = "root@acme.example"
site = "intl"
[[vpcs]]
id = "v1"
account = "1"
cidrs = ["127.100.0.0/24"]
[[zones]]
name = "corp.internal."
account = "1"
scope = ["v1"]
records = [{ name = "www", type = "A", data = "10.0.0.10" }]
EOF
echo "www.corp.internal A" > "$WD/private.txt"
echo "www.example A" > "$WD/public.txt"

named -g -c "$WD/named.conf" > "$WD/named.log" 2>&1 & NPID=$!
"$VPCDNS" serve --config "$WD/vpcdns.toml" > "$WD/vpcdns.log" 2>&1 & VPID=$!
trap 'kill $NPID $VPID 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 1 100); do
    dig +short +time=1 +tries=1 -b 127.100.0.1 -p $PORT_V @127.0.0.1 www.example A 2>/dev/null | grep -q 192.0.2.10 && break
    sleep 0.1
done
dig +short -b 127.100.0.1 -p $PORT_V @127.0.0.1 www.example A | grep -q 192.0.2.10 || die "vpcdns did not resolve www.example"

cpu() { local t=0 v; for task in /proc/$VPID/task/*; do v=$(sed 's/.*) //' "$task/stat" | awk '{print $12 + $13}'); t=$((t + v)); done; echo $t; }
measure() {  # FILE → "qps cpu_us_per_query"
    local c0 c1 out q
    c0=$(cpu)
    out=$(dnsperf -s 127.0.0.1 -p $PORT_V -a 127.100.0.1 -d "$1" -l "$DUR" -c 10 -q 100 2>&1)
    c1=$(cpu)
    q=$(echo "$out" | awk '/Queries completed/ {print $3}')
    local qps; qps=$(echo "$out" | awk '/Queries per second/ {print $4}')
    echo "$qps $(echo "scale=2; ($c1 - $c0) / $HZ * 1000000 / $q" | bc)"
}
read -r pq pc <<< "$(measure "$WD/private.txt")"
read -r uq uc <<< "$(measure "$WD/public.txt")"
printf "%-28s %12s %22s\n" "answer" "qps" "server µs CPU/query"
printf "%-28s %12s %22s\n" "private (corp.internal.)" "$pq" "$pc"
printf "%-28s %12s %22s\n" "public, cached (example.)" "$uq" "$uc"
printf "ratio cached public / private: %.2f (target ≤ 1.5)\n" "$(echo "$uc / $pc" | bc -l)"
