#!/usr/bin/env python3
"""Lists Rust functions longer than N lines (default 80) and files longer than 600 lines."""
import re, sys, pathlib
limit = int(sys.argv[1]) if len(sys.argv) > 1 else 80
roots = sys.argv[2:] or ["src", "stytch-emulator/src", "stytch-gateway/src"]
fn_re = re.compile(r'^(\s*)(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)')
res = []
files = []
for root in roots:
    for p in pathlib.Path(root).rglob("*.rs"):
        lines = p.read_text().splitlines()
        files.append((len(lines), str(p)))
        i = 0
        while i < len(lines):
            m = fn_re.match(lines[i])
            if m:
                indent = m.group(1)
                # find end: a line that is indent + '}' exactly
                j = i
                while j < len(lines) and not lines[j].rstrip().endswith('{') and not lines[j].rstrip().endswith(';'):
                    j += 1
                if j < len(lines) and lines[j].rstrip().endswith(';'):
                    i += 1; continue
                k = j + 1
                while k < len(lines) and lines[k].rstrip() != indent + '}':
                    k += 1
                n = k - i + 1
                if n > limit:
                    res.append((n, f"{p}:{i+1} {m.group(7)}"))
            i += 1
for n, s in sorted(res, reverse=True):
    print(f"{n:5} {s}")
print("-- files >600")
for n, s in sorted(files, reverse=True):
    if n > 600: print(f"{n:5} {s}")
