#!/usr/bin/env python3
"""Lists import circles between the modules of crates/core/src.

Every `crate::a::b` and `super::x` path in a file (in `use` lines and inline,
tests excluded) is resolved to the module file it names; the strongly
connected components of that graph with more than one member are circles.
The same is done one level up, for the top-level modules (folders). Exit
status 1 when a circle exists.
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "crates", "core", "src"
)


def module_of(rel):
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def load():
    mods = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".rs"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
                text = open(os.path.join(dirpath, f)).read()
                # Unit tests may reach anywhere; they are not the layering.
                text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
                mods[module_of(rel)] = text
    return mods


def resolve(path, mods):
    """The longest known module prefix of `path`."""
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None


def edges(mods):
    g = {m: set() for m in mods}
    for m, text in mods.items():
        for hit in re.finditer(r"\b(crate|super)((?:::\w+)+)", text):
            segs = hit.group(2).split("::")[1:]
            base = [] if hit.group(1) == "crate" else list(m[:-1])
            target = resolve(base + segs, mods)
            if target is not None and target != m and target != ():
                g[m].add(target)
        # `mod x;` children are declarations, not dependencies.
    return g


def sccs(g):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in g:
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def main():
    mods = load()
    files = edges(mods)
    top = {}
    for m, ts in files.items():
        if not m:
            continue
        top.setdefault(m[0], set())
        for t in ts:
            if t and t[0] != m[0]:
                top[m[0]].add(t[0])
    bad = False
    for name, g in (("file", files), ("folder", top)):
        for comp in sccs(g):
            bad = True
            print(f"{name} circle: " + " -> ".join("::".join(c) if isinstance(c, tuple) else c for c in comp))
    if not bad:
        print(f"no circles among {len(files)} modules and {len(top)} top-level modules")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
