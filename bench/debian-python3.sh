#!/usr/bin/env bash
# Benchmark 3: the python3 example image (recipes/python3.yaml, from its lock) built by
# strata with an empty cache (cold: every .deb downloaded from the mirror) and with a warm
# cache (the .debs and layers cached), beside mmdebstrap building the closest equivalent
# root filesystem, in one hyperfine run.
#
#   bench/debian-python3.sh
#   STRATA=path/to/strata RUNS=10 bench/debian-python3.sh
#
# Environment:
#   STRATA  strata binary (default target/release/strata; build it with cargo build --release)
#   RUNS    timed runs per command (default 5); one warm-up run precedes them
#   KEEP=1  keep bench/work/debian-python3 afterwards
#
# mmdebstrap (apt-get install mmdebstrap) uses the host's apt sources, like strata. Its
# `--variant=custom --include=python3` cannot work without a shell for the maintainer
# scripts, so the comparison is `--variant=essential --include=python3,ca-certificates`:
# the Essential set plus python3, unpacked and configured by dpkg in a chroot, written as a
# tarball. It downloads every package on each run (a fresh apt cache each time), like
# strata's cold build; strata's image holds fewer packages (no Essential set).
#
# Everything is written under bench/work/debian-python3/ (git-ignored). Needs root (mmdebstrap
# in root mode) and network to the Debian mirror.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$ROOT/bench/work/debian-python3"
STRATA="${STRATA:-$ROOT/target/release/strata}"
RUNS="${RUNS:-5}"
RECIPE="$ROOT/recipes/python3.yaml"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
[ -x "$STRATA" ] || die "no strata binary at $STRATA (cargo build --release)"
command -v hyperfine >/dev/null || die "hyperfine not installed (apt-get install hyperfine)"
command -v mmdebstrap >/dev/null || die "mmdebstrap not installed (apt-get install mmdebstrap)"
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap's root mode)"

rm -rf "$WORK"
mkdir -p "$WORK"
# The warm cache: one build fills it with the .debs and the layers.
"$STRATA" --cache "$WORK/cache-warm" -q build --locked "$RECIPE" -o "$WORK/out-warm" >/dev/null

hyperfine --warmup 1 --runs "$RUNS" --export-markdown "$WORK/results.md" \
    --export-json "$WORK/results.json" \
    -n "strata cold (empty cache)" \
    --prepare "rm -rf '$WORK/cache-cold' '$WORK/out-cold'" \
    "'$STRATA' --cache '$WORK/cache-cold' -q build --locked '$RECIPE' -o '$WORK/out-cold'" \
    -n "strata warm (cached)" \
    --prepare "rm -rf '$WORK/out-warm'" \
    "'$STRATA' --cache '$WORK/cache-warm' -q build --locked '$RECIPE' -o '$WORK/out-warm'" \
    -n "mmdebstrap --variant=essential --include=python3,ca-certificates" \
    --prepare "rm -f '$WORK/mmdebstrap.tar'" \
    "mmdebstrap --quiet --variant=essential --include=python3,ca-certificates bookworm '$WORK/mmdebstrap.tar'"

cat "$WORK/results.md"
python3 - "$WORK/results.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
names = list(r)
med = {n: r[n]["median"] for n in names}
mm = [n for n in names if n.startswith("mmdebstrap")][0]
for n in names:
    if n != mm:
        print(f"{mm} / {n}: {med[mm] / med[n]:.1f}x")
EOF
du -sh "$WORK/out-warm" "$WORK/mmdebstrap.tar" 2>/dev/null || true
if [ -z "${KEEP:-}" ]; then
    rm -rf "$WORK"
fi
