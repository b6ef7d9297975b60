#!/bin/bash
# Side-by-side benchmark of vpcdns against Knot DNS, NSD, BIND 9 and hickory-server on this machine, loopback only.
#
#   bash benches/peers.sh            # qps + server CPU per query, latency at a fixed rate, memory: ~10 min
#   bash benches/peers.sh memory     # RSS at 100,000 and 1,000,000 records (vpcdns and Knot), start-up times
#   SERVERS="vpcdns knot" DUR=10 bash benches/peers.sh
#   bash benches/peers.sh proxy      # CPU per query with a PROXY v2 header (one TLV) against without: vpcdns, Knot
#
# Every server gets the same generated zone (benches/gen.py: corp.internal., 10,000 hosts plus AAAA/CNAME/TXT/MX)
# on its own 127.0.0.1 port. vpcdns serves it through the full VPC path: two linked accounts, 8 VPCs, 41 zones,
# and the queries come from two VPC sources at once (one of each account). "vpcdns-1000" is the same with 1,000
# VPCs that all see the zone. Each server is started, warmed up, measured with dnsperf, and stopped by PID.
#
# On 2 cores dnsperf needs about one core itself, so qps mostly measures dnsperf; the robust figure is server CPU per
# answered query: the server's CPU time (utime + stime from /proc, all threads) over a run divided by the queries
# it answered. Everything written goes under $WORKDIR (default /tmp/vpcdns-bench). Nothing leaves loopback.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WD=${WORKDIR:-/tmp/vpcdns-bench}
DUR=${DUR:-15}
RATE=${RATE:-20000}
SERVERS=${SERVERS:-"vpcdns vpcdns-1000 knot nsd bind hickory"}
MODE=${1:-qps}
VPCDNS=$ROOT/target/release/vpcdns
# hickory-server serving the zone through its own path (examples/hickory_floor.rs): why vpcdns does not use it.
HICKORY=$ROOT/target/release/examples/hickory_floor
# A UDP sender that can put a PROXY v2 header before each query (examples/udp_load.rs): dnsperf cannot.
UDP_LOAD=$ROOT/target/release/examples/udp_load
PORT_vpcdns=5310; PORT_vpcdns1000=5311; PORT_knot=5312; PORT_nsd=5313; PORT_bind=5314; PORT_hickory=5315
HZ=$(getconf CLK_TCK)
SPID=""
mkdir -p "$WD/run" "$WD/results"

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

install() {
    local need=""
    for b in dnsperf knotd knotc nsd named dig python3 bc taskset; do command -v $b >/dev/null || need=1; done
    if [ -n "$need" ]; then
        log "installing dnsperf knot nsd bind9 (package scripts kept from starting the system daemons)"
        local policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1
        fi
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
            dnsperf knot nsd bind9 bind9-dnsutils python3 bc util-linux >/dev/null
        [ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
    fi
    [ -x "$VPCDNS" ] && [ -z "$(find "$ROOT/src" "$ROOT/Cargo.toml" -newer "$VPCDNS" | head -1)" ] ||
        (cd "$ROOT" && cargo build --release --quiet) || die "cargo build failed"
    case " $SERVERS ${MEMORY_SERVERS:-} " in
      *" hickory "*) [ -x "$HICKORY" ] && [ "$HICKORY" -nt "$ROOT/examples/hickory_floor.rs" ] ||
          (cd "$ROOT" && cargo build --release --quiet --example hickory_floor) || die "cargo build failed" ;;
    esac
}

data() {  # data DIR RECORDS [gen.py options]
    local d=$1 n=$2; shift 2
    [ -f "$d/corp.internal.zone" ] && [ -f "$d/vpcdns.toml" ] || python3 "$ROOT/benches/gen.py" "$d" "$n" "$@"
}

port_free() { ! ss -Hlnu "sport = :$1" | grep -q . && ! ss -Hlnt "sport = :$1" | grep -q .; }

# ---------------------------------------------------------------- server configs
conf_knot() {  # DIR ZONEFILE PORT — with PROXY=1, PROXY v2 headers from 127.0.0.77 are honoured
    mkdir -p "$1/db"; cp "$2" "$1/corp.internal.zone"
    local allow=""; [ -n "${PROXY:-}" ] && allow="    proxy-allowlist: 127.0.0.77"
    cat > "$1/knot.conf" <<EOF
server:
$allow
    rundir: "$1"
    pidfile: "$1/knot.pid"
    listen: 127.0.0.1@$3
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$1/db"
control:
    listen: "$1/knot.sock"
log:
  - target: "$1/knot.log"
    any: info
template:
  - id: default
    storage: "$1"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: corp.internal
    file: "$1/corp.internal.zone"
EOF
}
conf_nsd() {  # DIR ZONEFILE PORT — Debian's NSD rate-limits responses by default: off for the benchmark
    mkdir -p "$1"; cp "$2" "$1/corp.internal.zone"
    cat > "$1/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$3
    server-count: 2
    reuseport: yes
    username: ""
    chroot: ""
    database: ""
    zonelistfile: "$1/zone.list"
    pidfile: "$1/nsd.pid"
    xfrdfile: "$1/xfrd.state"
    xfrdir: "$1"
    logfile: "$1/nsd.log"
    zonesdir: "$1"
    zonefiles-write: 0
    verbosity: 1
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: corp.internal
    zonefile: "$1/corp.internal.zone"
EOF
}
conf_bind() {  # DIR ZONEFILE PORT — two views by source, as a VPC-aware BIND must be set up
    mkdir -p "$1"; cp "$2" "$1/a.zone"; cp "$2" "$1/b.zone"
    cat > "$1/named.conf" <<EOF
options {
    directory "$1"; pid-file "$1/named.pid"; session-keyfile "$1/session.key"; managed-keys-directory "$1";
    listen-on port $3 { 127.0.0.1; }; listen-on-v6 { none; };
    recursion no; notify no; dnssec-validation no; allow-transfer { none; };
};
controls { };
view "vpc-a" { match-clients { 127.100.0.0/24; }; zone "corp.internal" { type primary; file "$1/a.zone"; }; };
view "vpc-b" { match-clients { any; }; zone "corp.internal" { type primary; file "$1/b.zone"; }; };
EOF
}

descendants() { local p=$1 c; echo "$p"; for c in $(pgrep -P "$p"); do descendants "$c"; done; }
cpu_ticks() {  # utime + stime of every thread of the process tree
    local t=0 p v
    for p in $(descendants "$1"); do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}'); t=$((t + ${v:-0}))
    done
    echo $t
}
rss_kb() { local t=0 p v; for p in $(descendants "$1"); do v=$(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }

# start NAME DATADIR -> SPID, PORT, READY (seconds from exec to the first correct SOA answer)
start() {
    local s=$1 d=$2 dir=$WD/run/$1 serial
    rm -rf "$dir"; mkdir -p "$dir"
    local pv=PORT_${s//-/}; PORT=${!pv}
    port_free "$PORT" || die "port $PORT is in use: pick free ports or stop what holds it"
    serial=$(awk '/SOA/{print $5; exit}' "$d/corp.internal.zone")
    local t0; t0=$(date +%s.%N)
    case $s in
      vpcdns|vpcdns-1000)
        sed "s/127.0.0.1:[0-9]*/127.0.0.1:$PORT/" "$d/vpcdns.toml" > "$d/vpcdns-$PORT.toml"
        # With PROXY=1: 127.0.0.77 is a trusted front end whose TLV 0xE4 names the client's VPC by id.
        [ -z "${PROXY:-}" ] || sed -i '/^listen = /a proxy_from = ["127.0.0.77/32"]\nproxy_vpc_tlv = 0xE4' "$d/vpcdns-$PORT.toml"
        "$VPCDNS" serve --config "$d/vpcdns-$PORT.toml" > "$dir/out.log" 2>&1 & SPID=$! ;;
      knot) conf_knot "$dir" "$d/corp.internal.zone" "$PORT"; knotd -c "$dir/knot.conf" > "$dir/out.log" 2>&1 & SPID=$! ;;
      nsd)  conf_nsd "$dir" "$d/corp.internal.zone" "$PORT"; nsd -d -c "$dir/nsd.conf" > "$dir/out.log" 2>&1 & SPID=$! ;;
      hickory) "$HICKORY" "$d/corp.internal.zone" corp.internal. "127.0.0.1:$PORT" > "$dir/out.log" 2>&1 & SPID=$! ;;
      bind) conf_bind "$dir" "$d/corp.internal.zone" "$PORT"; named -f -c "$dir/named.conf" -n 2 > "$dir/out.log" 2>&1 & SPID=$! ;;
    esac
    local i got=""
    for i in $(seq 1 1200); do  # up to 60 s
        got=$(dig +short +time=1 +tries=1 -b 127.100.0.1 -p "$PORT" @127.0.0.1 corp.internal SOA 2>/dev/null | awk '{print $3}')
        [ "$got" = "$serial" ] && break
        kill -0 "$SPID" 2>/dev/null || { log "$s died: $(tail -3 "$dir/out.log")"; SPID=""; return 1; }
        sleep 0.05
    done
    READY=$(echo "$(date +%s.%N) - $t0" | bc)
    [ "$got" = "$serial" ] || { log "$s never answered the SOA"; stop; return 1; }
    log "$s ready on 127.0.0.1:$PORT after ${READY}s (pid $SPID)"
}
stop() {
    [ -n "$SPID" ] || return 0
    local pids p; pids=$(descendants "$SPID")
    kill $pids 2>/dev/null
    for p in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    wait "$SPID" 2>/dev/null; SPID=""
}
trap stop EXIT

# run LABEL DATADIR EXTRA-DNSPERF-ARGS... : two dnsperf processes at once, one per source (VPC 0 of the owner
# account, VPC 1 of the linked account), 5 clients each; prints "qps avg_latency_ms server_us_per_query lost"
run() {
    local label=$1 d=$2; shift 2
    local out=$WD/results/$label c0 c1 comp=0 qps=0 lat lost=0 f
    c0=$(cpu_ticks "$SPID")
    dnsperf -s 127.0.0.1 -p "$PORT" -a 127.100.0.1 -d "$d/queries.txt" -c 5 -l "$DUR" -t 2 "$@" > "$out.a" 2>&1 &
    local pa=$!
    dnsperf -s 127.0.0.1 -p "$PORT" -a 127.100.1.1 -d "$d/queries.txt" -c 5 -l "$DUR" -t 2 "$@" > "$out.b" 2>&1
    wait $pa
    c1=$(cpu_ticks "$SPID")
    for f in "$out.a" "$out.b"; do
        comp=$((comp + $(awk '/Queries completed:/{print $3}' "$f")))
        lost=$((lost + $(awk '/Queries lost:/{print $3}' "$f")))
        qps=$(echo "$qps + $(awk '/Queries per second:/{print $4}' "$f")" | bc)
    done
    lat=$(awk '/Average Latency/{s += $4; n++} END {printf "%.3f", s / n * 1000}' "$out.a" "$out.b")
    local us; us=$(echo "scale=2; ($c1 - $c0) / $HZ * 1000000 / $comp" | bc)
    printf "%.0f %s %s %s\n" "$qps" "$lat" "$us" "$lost"
}

bench_qps() {
    local tsv=$WD/results/qps.tsv s d
    printf "server\tRSS MB\tready s\tUDP qps\tUDP µs CPU/query\tlatency ms @%s qps\tTCP qps\tTCP µs CPU/query\tlost\n" "$RATE" > "$tsv"
    data "$WD/d10k" 10000 --vpcs 8
    data "$WD/d10k-1000" 10000 --vpcs 1000 --no-queries; cp "$WD/d10k/queries.txt" "$WD/d10k-1000/"
    for s in $SERVERS; do
        d=$WD/d10k; [ "$s" = vpcdns-1000 ] && d=$WD/d10k-1000
        start "$s" "$d" || continue
        dnsperf -s 127.0.0.1 -p "$PORT" -a 127.100.0.1 -d "$d/queries.txt" -n 1 -c 10 > /dev/null 2>&1  # warm-up
        local udp lat tcp rss
        udp=$(run "$s-udp" "$d")
        lat=$(DUR=10 run "$s-rate" "$d" -Q $((RATE / 2)))
        tcp=$(run "$s-tcp" "$d" -m tcp)
        rss=$(rss_kb "$SPID")
        read -r uq _ uc ul <<< "$udp"; read -r _ ll _ _ <<< "$lat"; read -r tq _ tc tl <<< "$tcp"
        printf "%s\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\n" "$s" "$(echo "$rss / 1024" | bc -l)" "$READY" \
            "$uq" "$uc" "$ll" "$tq" "$tc" "$((ul + tl))" >> "$tsv"
        log "$s: $(tail -1 "$tsv")"
        stop
    done
    echo; echo "== qps and server CPU per answered query (dnsperf ${DUR}s, 2 sources x 5 clients, $(nproc) cores) =="
    column -t -s $'\t' "$tsv"
    ratios "$tsv"
}

ratios() {  # server CPU per query of every server against Knot's and NSD's
    awk -F'\t' 'NR > 1 { us[$1] = $5; tus[$1] = $8; order[NR] = $1 }
        END {
            print ""; print "ratios of UDP (TCP) server CPU per query:"
            for (i = 2; i in order; i++) { s = order[i]
                line = sprintf("  %-12s", s)
                if (us["knot"] > 0) line = line sprintf("  vs knot %.2f (%.2f)", us[s] / us["knot"], tus[s] / tus["knot"])
                if (us["nsd"] > 0) line = line sprintf("  vs nsd %.2f (%.2f)", us[s] / us["nsd"], tus[s] / tus["nsd"])
                if (s == "vpcdns-1000" && us["vpcdns"] > 0) line = line sprintf("  vs vpcdns (8 VPCs) %.2f", us[s] / us["vpcdns"])
                if (s == "hickory" && us["vpcdns"] > 0) line = line sprintf("  vs vpcdns %.2f (%.2f)", us[s] / us["vpcdns"], tus[s] / tus["vpcdns"])
                print line } }' "$1"
}

# load_run DATADIR yes|no -> "qps us_per_query lost": two udp_load senders at once, one per client (VPC 0 of the
# owner account, VPC 1 of the linked one); with "yes" both send from the front end 127.0.0.77 and put a PROXY v2
# header naming the client and, in TLV 0xE4, its VPC id before every query.
load_run() {
    local d=$1 header=$2 out=$WD/results/load c0 c1 comp=0 lost=0 qps=0 f pa
    c0=$(cpu_ticks "$SPID")
    if [ "$header" = yes ]; then
        "$UDP_LOAD" "127.0.0.1:$PORT" 127.0.0.77 "$d/queries.txt" "$DUR" 127.100.0.1 0xE4=vpc-00000 > "$out.a" 2>&1 & pa=$!
        "$UDP_LOAD" "127.0.0.1:$PORT" 127.0.0.77 "$d/queries.txt" "$DUR" 127.100.1.1 0xE4=vpc-00001 > "$out.b" 2>&1
    else
        "$UDP_LOAD" "127.0.0.1:$PORT" 127.100.0.1 "$d/queries.txt" "$DUR" > "$out.a" 2>&1 & pa=$!
        "$UDP_LOAD" "127.0.0.1:$PORT" 127.100.1.1 "$d/queries.txt" "$DUR" > "$out.b" 2>&1
    fi
    wait $pa
    c1=$(cpu_ticks "$SPID")
    for f in "$out.a" "$out.b"; do
        comp=$((comp + $(awk '{print $4}' "$f"))); lost=$((lost + $(awk '{print $6}' "$f")))
        qps=$(echo "$qps + $(awk '{print $8}' "$f")" | bc)
    done
    printf "%.0f %s %s\n" "$qps" "$(echo "scale=2; ($c1 - $c0) / $HZ * 1000000 / $comp" | bc)" "$lost"
}

# Server CPU per answered query with a PROXY v2 header (one TLV) against without, vpcdns and Knot (proxy-allowlist)
# side by side on the same traffic from the same sender.
bench_proxy() {
    local tsv=$WD/results/proxy.tsv d=$WD/d10k s header r
    [ -x "$UDP_LOAD" ] && [ "$UDP_LOAD" -nt "$ROOT/examples/udp_load.rs" ] ||
        (cd "$ROOT" && cargo build --release --quiet --example udp_load) || die "cargo build failed"
    data "$d" 10000 --vpcs 8
    printf "server\theader\tqps\tµs CPU/query\tlost\n" > "$tsv"
    for s in ${PROXY_SERVERS:-vpcdns knot}; do
        PROXY=1 start "$s" "$d" || continue
        "$UDP_LOAD" "127.0.0.1:$PORT" 127.100.0.1 "$d/queries.txt" 2 > /dev/null 2>&1  # warm-up
        for header in no yes; do
            read -r q u l <<< "$(load_run "$d" "$header")"
            printf "%s\t%s\t%s\t%s\t%s\n" "$s" "$header" "$q" "$u" "$l" >> "$tsv"
            log "$s: $(tail -1 "$tsv")"
        done
        stop
    done
    echo; echo "== PROXY v2: server CPU per answered query (udp_load ${DUR}s, 2 clients x 64 outstanding) =="
    column -t -s $'\t' "$tsv"
    awk -F'\t' 'NR > 1 { us[$1 "/" $2] = $4 }
        END { if (us["vpcdns/no"] > 0) printf "\nvpcdns with a header: %.2f x without", us["vpcdns/yes"] / us["vpcdns/no"]
              if (us["knot/yes"] > 0) printf "; %.2f x Knot with a header", us["vpcdns/yes"] / us["knot/yes"]
              print "" }' "$tsv"
}

# Zones of 100,000 and 1,000,000 records (80,000 / 800,000 hosts plus their AAAA, CNAME, TXT and apex records):
# start-up to the first answer, RSS, memory per record above an almost empty zone, and a full reload of the whole
# zone rewritten with a new serial (vpcdns: SIGHUP; Knot: knotc zone-reload), until the new serial is answered.
bench_memory() {
    local tsv=$WD/results/memory.tsv hosts s
    printf "server\trecords\tready s\tRSS MB\tKB/record\tfull reload s\n" > "$tsv"
    data "$WD/m1k" 800 --no-queries
    for s in ${MEMORY_SERVERS:-vpcdns knot}; do
        start "$s" "$WD/m1k" || continue; local base; base=$(rss_kb "$SPID"); stop
        for hosts in 80000 800000; do
            data "$WD/m$hosts" "$hosts" --no-queries
            data "$WD/m$hosts-next" "$hosts" --no-queries --serial 2026112502
            # vpcdns serves its data directory in place: serve a copy, so the reload below leaves the data as it was
            rm -rf "$WD/run/data"; cp -r "$WD/m$hosts" "$WD/run/data"
            start "$s" "$WD/run/data" || continue
            sleep 1
            local rss recs reload served=$WD/run/data/corp.internal.zone
            [ "$s" = knot ] && served=$WD/run/knot/corp.internal.zone
            rss=$(rss_kb "$SPID")
            recs=$((hosts + hosts / 10 * 2 + hosts / 20 + 12))
            reload=$(full_reload "$s" "$served" "$WD/m$hosts-next/corp.internal.zone")
            printf "%s\t%s\t%.2f\t%.1f\t%.3f\t%s\n" "$s" "$recs" "$READY" "$(echo "$rss / 1024" | bc -l)" \
                "$(echo "($rss - $base) / $recs" | bc -l)" "$reload" >> "$tsv"
            log "$s: $(tail -1 "$tsv")"
            stop
        done
    done
    echo; echo "== memory, start-up and full reload =="; column -t -s $'\t' "$tsv"
}

# full_reload NAME SERVED NEW: replaces the served zone file SERVED by NEW (by rename, as deploy tools do), triggers
# a reload, and prints the seconds until the new serial is answered (or "failed").
full_reload() {
    local s=$1 served=$2 new=$3 serial t0 i got=""
    serial=$(awk '/SOA/{print $5; exit}' "$new")
    cp "$new" "$served.next"
    t0=$(date +%s.%N)
    mv "$served.next" "$served"
    case $s in
        vpcdns*) kill -HUP "$SPID" ;;
        knot) knotc -c "$WD/run/knot/knot.conf" zone-reload corp.internal > /dev/null 2>&1 ;;
    esac
    for i in $(seq 1 3000); do  # up to ~60 s
        got=$(dig +short +time=1 +tries=1 -b 127.100.0.1 -p "$PORT" @127.0.0.1 corp.internal SOA 2>/dev/null | awk '{print $3}')
        [ "$got" = "$serial" ] && break
        sleep 0.01
    done
    if [ "$got" = "$serial" ]; then printf "%.2f" "$(echo "$(date +%s.%N) - $t0" | bc)"; else echo failed; fi
}

install
case $MODE in
    qps) bench_qps ;;
    memory) bench_memory ;;
    proxy) bench_proxy ;;
    all) bench_qps; bench_memory ;;
    *) die "usage: peers.sh [qps|memory|proxy|all]" ;;
esac
