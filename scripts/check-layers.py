#!/usr/bin/env python3
"""The architecture's import rules, checked against the code (run by scripts/test.sh).

Reads every `crate::…` path in src/ (outside `#[cfg(test)]` modules), resolves it to the file that defines the
module, and checks:
  1. no import cycle between files;
  2. the layer rules: a folder may import only the folders listed for it in LAYERS (ARCHITECTURE.md says why);
With --report it also prints the review's numbers: files over 500 lines, non-test functions over 60 lines,
`json!` in the control plane, and `pub` against `pub(crate)` items.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Which top-level folders each folder may import (itself always). The order is the layering, lowest first.
LAYERS = {
    "dns": set(),
    "settings.rs": {"dns"},
    "model": {"dns", "settings.rs"},
    "dataplane": {"dns", "settings.rs", "model"},
    "control": {"dns", "settings.rs", "model"},
    "process": {"dns", "settings.rs", "model", "dataplane", "control"},
    # The crate root files.
    "main.rs": {"dns", "settings.rs", "model", "dataplane", "control", "process"},
    "lib.rs": {"dns", "settings.rs", "model", "dataplane", "control", "process"},
    "testing.rs": {"dns", "settings.rs", "model", "dataplane", "process"},
}


def rust_files():
    for root, _, files in os.walk(SRC):
        for name in files:
            if name.endswith(".rs"):
                yield os.path.relpath(os.path.join(root, name), SRC)


def module_of(path):
    """`model/compile/mod.rs` → ['model', 'compile']; `dns/name.rs` → ['dns', 'name']."""
    parts = path[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        return []
    return parts


def without_tests(text):
    """The text before the first `#[cfg(test)]` module, and without comments and string literals."""
    cut = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*mod ", text, re.M)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//[^\n]*", "", text)
    # re.S: a backslash before a line break (a string continued on the next line) is an escape too.
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text, flags=re.S)
    return text


def main():
    report = "--report" in sys.argv
    files = sorted(rust_files())
    modules = {tuple(module_of(f)): f for f in files}
    edges = {f: set() for f in files}
    problems = []
    for f in files:
        text = without_tests(open(os.path.join(SRC, f)).read())
        # `use crate::{a::b, c}` groups are not used in this crate; every path is spelled from `crate::`.
        for m in re.finditer(r"\bcrate((?:::[a-z_][a-z0-9_]*)+)", text):
            parts = m.group(1).strip(":").split("::")
            # The longest prefix that is a module file.
            target = None
            for n in range(len(parts), 0, -1):
                if tuple(parts[:n]) in modules:
                    target = modules[tuple(parts[:n])]
                    break
            if target and target != f:
                edges[f].add(target)
    # Layer rules.
    def layer(path):
        top = path.split(os.sep)[0]
        return top
    for f, targets in edges.items():
        mine = layer(f)
        allowed = LAYERS.get(mine)
        if allowed is None:
            problems.append(f"{f}: a file outside the known layers")
            continue
        for t in targets:
            theirs = layer(t)
            if theirs != mine and theirs not in allowed:
                problems.append(f"layer rule broken: {f} ({mine}) imports {t} ({theirs})")
    # Cycles (Tarjan's strongly connected components).
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in files:
        if v not in index:
            connect(v)
    for scc in sccs:
        problems.append(f"import cycle between {len(scc)} files: {', '.join(scc)}")
    if report:
        print_report(files, edges, sccs)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} problem(s)")
        return 1
    print(f"check-layers: {len(files)} files, {sum(len(e) for e in edges.values())} imports, no cycle, every layer rule kept")
    return 0


def functions(text):
    """(name, lines) of every `fn` with a body, by brace matching outside strings and comments."""
    clean = without_tests(text)
    out = []
    for m in re.finditer(r"\bfn\s+([a-zA-Z0-9_]+)[^;{]*\{", clean):
        depth, i = 0, m.end() - 1
        while i < len(clean):
            if clean[i] == "{":
                depth += 1
            elif clean[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        lines = clean[m.start() : i].count("\n") + 1
        out.append((m.group(1), lines))
    return out


def print_report(files, edges, sccs):
    long_files, long_fns, pub, pub_crate, json = [], [], 0, 0, 0
    for f in files:
        text = open(os.path.join(SRC, f)).read()
        n = text.count("\n")
        if n > 500:
            long_files.append((n, f))
        for name, lines in functions(text):
            if lines > 60:
                long_fns.append((lines, f"{f}::{name}"))
        body = without_tests(text)
        pub += len(re.findall(r"\bpub\s+(?:fn|struct|enum|const|static|type|trait|mod|use|[a-z_]+\s*:)", body))
        pub_crate += len(re.findall(r"\bpub\(crate\)", body))
        if f.startswith("control"):
            json += len(re.findall(r"\bjson!\(", body))
    print(f"import cycles: {len(sccs)}")
    print(f"files over 500 lines: {len(long_files)}: " + ", ".join(f"{f} ({n})" for n, f in sorted(long_files, reverse=True)))
    print(f"non-test functions over 60 lines: {len(long_fns)}: " + ", ".join(f"{f} ({n})" for n, f in sorted(long_fns, reverse=True)))
    print(f"json! in the control plane: {json}")
    print(f"pub items: {pub}; pub(crate): {pub_crate}")


if __name__ == "__main__":
    sys.exit(main())
