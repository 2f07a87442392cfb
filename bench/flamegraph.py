#!/usr/bin/env python3
"""flamegraph.py — folds `perf script` output into stacks and draws them as
an SVG flame graph (root at the bottom, width = share of samples).

    perf script -i perf.data | bench/flamegraph.py --title T > out.svg
    perf script -i perf.data | bench/flamegraph.py --folded > out.folded

Each sample becomes "comm;outermost;...;innermost"; frames perf could not
name are "[unknown]". --top N also prints the N functions with the most
self samples to stderr, which is what the README's lesson is read from.
"""
import argparse
import collections
import html
import re
import sys

FRAME = re.compile(r"^\s*[0-9a-f]+\s+(.+?)(?:\s+\((.*)\))?$")


def fold(lines):
    """Yields one ';'-joined stack (outermost first) per sample."""
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None:
                yield ";".join([comm] + frames[::-1])
            comm, frames = None, []
            continue
        if comm is None:
            if line[0].isspace():
                continue
            comm = line.split()[0]
            continue
        m = FRAME.match(line)
        if not m:
            continue
        sym = m.group(1)
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        if sym == "[unknown]" and m.group(2):
            sym = "[" + m.group(2).rsplit("/", 1)[-1] + "]"
        frames.append(sym.replace(";", ":"))
    if comm is not None:
        yield ";".join([comm] + frames[::-1])


def color(name):
    """Warm colours for user code, cool for the kernel, grey for unknown."""
    h = sum(ord(c) for c in name) % 60
    if name.startswith("[") or name == "[unknown]":
        return "rgb(190,190,190)"
    if re.match(r"^(__|do_|sys_|tcp_|ip_|udp_|net|sock|skb|ep_|entry_|x64_|dev_|inet|veth|napi)", name):
        return "rgb(%d,%d,%d)" % (80 + h, 160 + h // 2, 220)
    return "rgb(%d,%d,%d)" % (225, 100 + h * 2, 40 + h // 2)


def draw(stacks, title, out, width=1200, row=16, minpx=0.3):
    total = sum(stacks.values())
    tree = {}
    for st, n in stacks.items():
        node = tree
        for fr in st.split(";"):
            ent = node.setdefault(fr, [0, {}])
            ent[0] += n
            node = ent[1]

    def depth(node):
        return 1 + max((depth(c[1]) for c in node.values()), default=0)

    h = (depth(tree) + 2) * row + 30
    out.write('<?xml version="1.0" standalone="no"?>\n')
    out.write('<svg version="1.1" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg" '
              'font-family="monospace" font-size="11">\n' % (width, h))
    out.write('<rect width="100%%" height="100%%" fill="rgb(250,250,240)"/>\n')
    out.write('<text x="%d" y="18" text-anchor="middle" font-size="15">%s (%d samples)</text>\n'
              % (width // 2, html.escape(title), total))
    scale = (width - 20) / max(total, 1)

    def walk(node, x, level):
        for name in sorted(node):
            n, kids = node[name]
            w = n * scale
            if w >= minpx:
                y = h - (level + 1) * row - 4
                label = html.escape(name)
                pct = 100.0 * n / total
                out.write('<g><title>%s (%d samples, %.2f%%)</title>'
                          '<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" rx="2"/>'
                          % (label, n, pct, x, y, w, row - 1, color(name)))
                chars = int(w / 6.6)
                if chars >= 3:
                    txt = name if len(name) <= chars else name[:chars - 2] + ".."
                    out.write('<text x="%.1f" y="%d">%s</text>' % (x + 2, y + row - 4, html.escape(txt)))
                out.write('</g>\n')
                walk(kids, x, level + 1)
            x += w

    walk(tree, 10, 0)
    out.write('</svg>\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--title", default="flame graph")
    ap.add_argument("--folded", action="store_true", help="print folded stacks, no SVG")
    ap.add_argument("--top", type=int, default=0, help="print the N hottest functions (self) to stderr")
    a = ap.parse_args()
    stacks = collections.Counter(fold(sys.stdin))
    if not stacks:
        sys.exit("flamegraph: no samples in the input (is it `perf script` output?)")
    if a.top:
        self_ = collections.Counter()
        incl = collections.Counter()
        for st, n in stacks.items():
            fr = st.split(";")
            self_[fr[-1]] += n
            for f in set(fr[1:]):
                incl[f] += n
        total = sum(stacks.values())
        for f, n in self_.most_common(a.top):
            print("%6.2f%% self %6.2f%% total  %s" % (100.0 * n / total, 100.0 * incl[f] / total, f), file=sys.stderr)
    if a.folded:
        for st, n in sorted(stacks.items()):
            print(st, n)
    else:
        draw(stacks, a.title, sys.stdout)


if __name__ == "__main__":
    main()
