#!/usr/bin/env bash
# check-manpages.sh BINDIR MANDIR — the man pages cannot drift from the
# programs: every option (--word) that `zgate-relay --help`, `zgate-agent
# --help`, `zgate-agent status --help`, `zgate-probe --help` and (when
# built) `zgate-api --help` print must appear in man/zgate-relay.8,
# man/zgate-agent.8, man/zgate-probe.1 or man/zgate-api.8
# (looked up in MANDIR/manN/ or MANDIR itself); every option a page lists
# as an entry of its own (.TP) must be one some --help prints (no removed
# option left documented); every default --help states (default "X", or
# "(default N)" with a digit in it) must be stated in that option's man
# entry; the name an entry of --help gives its value ("  --tls-cert FILE")
# must be the one in that option's man entry (optional [parts] aside); and
# each page must format without a groff warning. Prints one line
# per check; exits 1 on a failure.
set -uo pipefail
bindir=${1:?usage: check-manpages.sh BINDIR MANDIR} mandir=${2:?usage: check-manpages.sh BINDIR MANDIR}
rc=0

page_of() { # NAME SECTION
	local f
	for f in "$mandir/man$2/$1.$2" "$mandir/$1.$2" "$mandir/man$2/$1.$2.gz"; do
		[[ -f $f ]] && { echo "$f"; return 0; }
	done
	return 1
}
# The page as plain text with roff's "\-" and font escapes undone.
page_text() { if [[ $1 == *.gz ]]; then zcat "$1"; else cat "$1"; fi | sed 's/\\-/-/g; s/\\f[BIRP]//g; s/\\f(..//g'; }

check() { # PROG SECTION HELP-COMMAND...
	local prog=$1 sect=$2 page help opts missing=() o text; shift 2
	if ! page=$(page_of "$prog" "$sect"); then
		echo "FAIL $prog($sect): no man page under $mandir"; rc=1; return
	fi
	if ! help=$("$@" 2>&1); then
		echo "FAIL $prog($sect): '$*' failed: $help"; rc=1; return
	fi
	opts=$(grep -oE -- '(^|[^a-zA-Z0-9-])--[a-z][a-z0-9-]*' <<<"$help" | sed 's/^[^-]*//' | sort -u)
	text=$(page_text "$page")
	for o in $opts; do
		grep -qE -- "(^|[^a-zA-Z0-9-])$o([^a-zA-Z0-9-]|\$)" <<<"$text" || missing+=("$o")
	done
	if [[ ${#missing[@]} -gt 0 ]]; then
		echo "FAIL $prog($sect): options in '$*' but not in $page: ${missing[*]}"; rc=1
	else
		echo "ok   $prog($sect): all $(wc -w <<<"$opts") options of '$(basename "$1") ${*:2}' are documented"
	fi
}
# drift PAGE, the --help texts on stdin: the man entries (.TP paragraphs)
# against the help's options and defaults. Prints the problems, one a line.
drift_py='
import re, sys
page = open(sys.argv[1], encoding="utf-8", errors="replace").read()
if sys.argv[1].endswith(".gz"):
    import gzip
    page = gzip.open(sys.argv[1], "rt", encoding="utf-8", errors="replace").read()
helptext = sys.stdin.read()

def plain(t):
    t = t.replace("\\-", "-")
    t = re.sub(r"\\f(\(..|\[[^]]*\]|.)", "", t)
    t = re.sub(r"\\\(..", "", t)
    t = re.sub(r"^\.(B|I|BI|IB|BR|RB|IR|RI)\s+", "", t, flags=re.M)
    return t.replace("\"", "")

# man: option -> the text of its entries, and of their tag lines; tags of
# .TP entries
entries, tags, tagged, lines = {}, {}, set(), page.split("\n")
i = 0
while i < len(lines):
    if lines[i].startswith(".TP") and i + 1 < len(lines):
        tag = plain(lines[i + 1])
        j = i + 2
        while j < len(lines) and not re.match(r"\.(TP|SS|SH)\b", lines[j]):
            j += 1
        body = plain("\n".join(lines[i + 2:j]))
        for o in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", tag):
            tagged.add(o)
            entries[o] = entries.get(o, "") + "\n" + body
            tags[o] = tags.get(o, "") + "\n" + tag
        i = j
    else:
        i += 1

# help: option blocks. A block starts at an indented line whose first word
# is an option (the options named before the description column belong to
# it) and runs over the more indented lines under it.
helpopts, helptxt, metas, cur = set(), {}, {}, []
for ln in helptext.split("\n"):
    # an entry of the --help of opt.c: "  --flag VALUE-NAME" alone on its line
    m = re.match(r"  (--[a-z][a-z0-9-]*) (\S+)$", ln)
    if m:
        metas[m.group(1)] = m.group(2)
    if re.match(r"\s+(-\w, )?--[a-z]", ln):
        head = re.split(r"\S\s{3,}", ln.strip(), maxsplit=1)[0]
        cur = re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", head)
    elif not ln.startswith(" "):
        cur = []
    for c in cur:
        helptxt[c] = helptxt.get(c, "") + " " + ln.strip()
    helpopts.update(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", ln))

for o in sorted(tagged - helpopts):
    print("%s: a man entry, but no --help prints it" % o)
compared = 0
for o, txt in sorted(helptxt.items()):
    m = re.search(r"default \"([^\"]+)\"", txt) or re.search(r"\(default:? ([^\s);,]*\d[^\s);,]*|\*)", txt)
    if not m or o not in entries:
        continue
    v = m.group(1)
    compared += 1
    if not re.search(r"(?<![\w.:/-])" + re.escape(v) + r"(?![\w:/-])", entries[o]):
        print("%s: --help says default %s, its man entry does not" % (o, v))
# the name of the value: what --help shows must be in the tag of the man entry
# (optional parts, [NAME@], aside)
for o, v in sorted(metas.items()):
    if o in tags and v.replace("[", "").replace("]", "") not in tags[o].replace("[", "").replace("]", ""):
        print("%s: --help names its value %s, its man entry does not" % (o, v))
print("#%d" % compared)
'
drift() { # PROG SECTION HELP-COMMAND... [-- HELP-COMMAND...]
	local prog=$1 sect=$2 page help="" out n cmd=(); shift 2
	page=$(page_of "$prog" "$sect") || return 0 # reported by check
	while [[ $# -gt 0 ]]; do
		if [[ $1 == -- ]]; then help+=$'\n'$("${cmd[@]}" 2>&1); cmd=(); else cmd+=("$1"); fi
		shift
	done
	[[ ${#cmd[@]} -gt 0 ]] && help+=$'\n'$("${cmd[@]}" 2>&1)
	if ! out=$(python3 -c "$drift_py" "$page" <<<"$help" 2>&1); then
		echo "FAIL $prog($sect): cannot compare with --help: $out"; rc=1; return
	fi
	n=$(sed -n 's/^#//p' <<<"$out"); out=$(grep -v '^#' <<<"$out")
	if [[ -n $out ]]; then
		while IFS= read -r l; do echo "FAIL $prog($sect): $l"; done <<<"$out"; rc=1
	else
		echo "ok   $prog($sect): no man entry --help lacks; $n defaults of --help stated alike"
	fi
}
lint() { # PROG SECTION
	local page out
	page=$(page_of "$1" "$2") || return 0
	out=$( { if [[ $page == *.gz ]]; then zcat "$page"; else cat "$page"; fi; } | groff -man -ww -z 2>&1)
	if [[ -n $out ]]; then echo "FAIL $1($2): groff warnings: $out"; rc=1; else echo "ok   $1($2): formats without warnings"; fi
}

check zgate-relay 8 "$bindir/zgate-relay" --help
check zgate-agent 8 "$bindir/zgate-agent" --help
check zgate-agent 8 "$bindir/zgate-agent" status --help
check zgate-probe 1 "$bindir/zgate-probe" --help
drift zgate-relay 8 "$bindir/zgate-relay" --help
drift zgate-agent 8 "$bindir/zgate-agent" --help -- "$bindir/zgate-agent" status --help
drift zgate-probe 1 "$bindir/zgate-probe" --help
if [[ -x $bindir/zgate-api ]]; then
	check zgate-api 8 "$bindir/zgate-api" --help
	drift zgate-api 8 "$bindir/zgate-api" --help
fi
if [[ -x $bindir/zgate-connector ]]; then
	check zgate-connector 8 "$bindir/zgate-connector" --help
fi
if command -v groff >/dev/null; then
	lint zgate-relay 8; lint zgate-agent 8; lint zgate-probe 1; lint zgate-api 8
	[[ -x $bindir/zgate-connector ]] && lint zgate-connector 8
else
	echo "note: no groff (Debian groff-base): pages not linted"
fi
exit $rc
