#!/usr/bin/env python3
"""Module dependency graph of a crate's src/: nodes are modules at depth D (default 1:
top-level modules), edges from `use crate::a::b` / `crate::a::b` / `super::` references.
Prints edges and strongly connected components (cycles)."""
import re, sys, pathlib
args = [a for a in sys.argv[1:] if not a.startswith('-')]
root = pathlib.Path(args[0]); depth = int(args[1]) if len(args) > 1 else 1
def modpath(p):
    rel = p.relative_to(root).with_suffix('')
    parts = list(rel.parts)
    if parts[-1] in ('mod', 'lib', 'main'): parts = parts[:-1]
    return parts
edges = {}
for p in root.rglob('*.rs'):
    mp = modpath(p)
    src = p.read_text()
    # drop test modules roughly: cut at '#[cfg(test)]\nmod tests'
    i = src.find('#[cfg(test)]\nmod tests {')
    if i >= 0: src = src[:i]
    if p.name == 'tests.rs' or 'tests' in mp: continue
    src = '\n'.join(l for l in src.split('\n') if not l.lstrip().startswith('//'))
    # expand `crate::{a, b::c}` and `super::{a, b}` groups (one level) into separate paths
    def expand(m):
        base = m.group(1)
        body = m.group(2)
        depth_ = 0; cur = ''; parts = []
        for ch in body:
            if ch == '{': depth_ += 1
            if ch == '}': depth_ -= 1
            if ch == ',' and depth_ == 0: parts.append(cur); cur = ''
            else: cur += ch
        parts.append(cur)
        return ' '.join(base + p.strip().split('{')[0].rstrip(':') + ';' for p in parts if p.strip() and p.strip() != 'self')
    src = re.sub(r'\b((?:crate|(?:super::)*super)::)\{((?:[^{}]|\{[^{}]*\})*)\}', expand, src)
    node = '::'.join(mp[:depth]) or 'crate'
    refs = set()
    for m in re.finditer(r'\bcrate::((?:[a-z_][a-z0-9_]*)(?:::[a-z_][a-z0-9_]*)*)', src):
        refs.add(tuple(m.group(1).split('::')))
    # depth of inline `mod x {` blocks at each offset: a `super::` inside one is relative to it
    inline = []
    for mm in re.finditer(r'^(\s*)(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{', src, flags=re.M):
        indent = mm.group(1)
        end = src.find('\n' + indent + '}', mm.end())
        inline.append((mm.start(), end if end >= 0 else len(src)))
    for m in re.finditer(r'\b((?:super::)+)((?:[a-z_][a-z0-9_]*)(?:::[a-z_][a-z0-9_]*)*)?', src):
        ups = m.group(1).count('super::') - sum(1 for a, b in inline if a <= m.start() < b)
        if ups <= 0: continue
        base = mp[:len(mp)-ups] if p.stem != 'mod' or True else mp
        # in foo/mod.rs or foo.rs, module path is mp; super goes to parent
        base = mp[:max(0, len(mp)-ups)]
        rest = tuple(m.group(2).split('::')) if m.group(2) else ()
        refs.add(tuple(base) + rest)
    for r in refs:
        # resolve to an existing module prefix
        target = None
        for k in range(len(r), 0, -1):
            cand = list(r[:k])
            if (root / pathlib.Path(*cand)).with_suffix('.rs').exists() or (root / pathlib.Path(*cand) / 'mod.rs').exists():
                target = cand; break
        if not target: target = []
        t = '::'.join(target[:depth]) or 'crate'
        if t != node:
            edges.setdefault(node, set()).add(t)
# SCC (Tarjan)
index = {}; low = {}; stack = []; on = set(); sccs = []; c = [0]
nodes = set(edges) | {t for v in edges.values() for t in v}
sys.setrecursionlimit(10000)
def strong(v):
    index[v] = low[v] = c[0]; c[0] += 1; stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index: strong(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(comp)
for v in sorted(nodes):
    if v not in index: strong(v)
if '-v' in sys.argv:
    for k in sorted(edges): print(k, '->', ', '.join(sorted(edges[k])))
print('cycles:', sccs if sccs else 'none')
if '--check' in sys.argv and sccs:
    sys.exit(1)
