#!/usr/bin/env python3
"""Benchmark data for benches/peers.sh: one zone, a dnsperf query file and vpcdns configs that serve it.

usage: gen.py OUTDIR RECORDS [--port P] [--vpcs V] [--no-queries] [--serial S]

Writes into OUTDIR:
  corp.internal.zone   RECORDS host A records, plus AAAA (1/10), CNAME (1/10), TXT (1/20), MX at the apex
  queries.txt          100,000 queries: 80 % existing A, 10 % other types, 10 % absent names (NXDOMAIN)
  vpcdns.toml          the zone through the full VPC path: two linked accounts, V VPCs (half of them the linked
                       account's), corp.internal. scoped to all of them, and 40 more zones with mixed scopes,
                       among them a more specific dev.corp.internal. that some VPCs see.
VPC i has the source range 127.(100 + i // 250).(i % 250).0/24, so `dnsperf -a 127.100.0.1` queries from VPC 0.
Everything is deterministic (fixed seeds), so runs compare.
"""
import argparse
import os
import random

ZONE = "corp.internal."
EXTRA_ZONES = 40


def zone_text(records, serial):
    out = [f"$ORIGIN {ZONE}\n$TTL 300\n",
           f"@ SOA ns1 hostmaster {serial} 3600 600 604800 300\n",
           "@ NS ns1\n@ NS ns2\nns1 A 127.0.0.1\nns2 A 127.0.0.1\n",
           '@ TXT "v=spf1 mx -all"\n']
    for i in range(4):
        out.append(f"@ MX {10 * (i + 1)} mx{i}\nmx{i} A 10.200.0.{i + 1}\n")
    for i in range(records):
        out.append(f"host{i} A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\n")
    for i in range(max(1, records // 10)):
        out.append(f"host{i} AAAA fd00::{i >> 16:x}:{i & 0xffff:x}\n")
        out.append(f"alias{i} CNAME host{(i * 13) % records}\n")
    for i in range(max(1, records // 20)):
        out.append(f'txt{i} TXT "team={i % 31}" "tier=gold"\n')
    return "".join(out)


def queries(records, count=100_000, seed=7):
    rnd = random.Random(seed)
    tenth, twentieth = max(1, records // 10), max(1, records // 20)
    lines = []
    for _ in range(count):
        r = rnd.random()
        if r < 0.8:
            lines.append(f"host{rnd.randrange(records)}.{ZONE} A")
        elif r < 0.9:
            lines.append(rnd.choice([
                f"host{rnd.randrange(tenth)}.{ZONE} AAAA",
                f"alias{rnd.randrange(tenth)}.{ZONE} A",
                f"txt{rnd.randrange(twentieth)}.{ZONE} TXT",
                f"{ZONE} MX", f"{ZONE} SOA", f"{ZONE} NS",
            ]))
        else:
            lines.append(f"absent{rnd.randrange(10**7)}.{ZONE} A")
    return "\n".join(lines) + "\n"


def vpc_id(i):
    return f"vpc-{i:05d}"


def config(port, vpcs):
    a, b = "1000000000000001", "1000000000000002"
    out = [f'[server]\nlisten = ["127.0.0.1:{port}"]\nnameserver = "ns1.corp.internal."\n\n',
           # dnsperf sends from one address: the per-source query limit is off, as the peers have none by default.
           "[limits]\nmax_records_per_account = 5000000\nmax_record_bytes_per_account = 1000000000\n"
           "queries_per_source = 0\n\n",
           f'[[accounts]]\nuid = "{a}"\nname = "owner"\nemail = "root@owner.example"\nsite = "intl"\n\n',
           f'[[accounts]]\nuid = "{b}"\nname = "consumer"\nemail = "root@consumer.example"\nsite = "intl"\n\n',
           f'[[links]]\naccount = "{a}"\nlinked = "root@consumer.example"\n\n']
    for i in range(vpcs):
        owner = a if i % 2 == 0 else b
        out.append(f'[[vpcs]]\nid = "{vpc_id(i)}"\naccount = "{owner}"\n'
                   f'cidrs = ["127.{100 + i // 250}.{i % 250}.0/24"]\n\n')
    everyone = ", ".join(f'"{vpc_id(i)}"' for i in range(vpcs))
    out.append(f'[[zones]]\nname = "{ZONE}"\naccount = "{a}"\nscope = [{everyone}]\nfile = "corp.internal.zone"\n\n')
    for z in range(EXTRA_ZONES):
        name = "dev.corp.internal." if z == 0 else f"svc{z}.internal."
        scope = ", ".join(f'"{vpc_id(i)}"' for i in range(vpcs) if (i + z) % 3 != 0) or f'"{vpc_id(0)}"'
        recs = ", ".join(f'{{ name = "h{r}", type = "A", data = "10.99.{z}.{r}" }}' for r in range(20))
        out.append(f'[[zones]]\nname = "{name}"\naccount = "{a}"\nscope = [{scope}]\nrecords = [{recs}]\n\n')
    return "".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("outdir")
    p.add_argument("records", type=int)
    p.add_argument("--port", type=int, default=5310)
    p.add_argument("--vpcs", type=int, default=8)
    p.add_argument("--serial", type=int, default=2026112501)
    p.add_argument("--no-queries", action="store_true")
    args = p.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    with open(os.path.join(args.outdir, "corp.internal.zone"), "w") as f:
        f.write(zone_text(args.records, args.serial))
    if not args.no_queries:
        with open(os.path.join(args.outdir, "queries.txt"), "w") as f:
            f.write(queries(args.records))
    with open(os.path.join(args.outdir, "vpcdns.toml"), "w") as f:
        f.write(config(args.port, args.vpcs))


if __name__ == "__main__":
    main()
