#!/usr/bin/env bash
# Benchmark 1: one ~110 MB layer of real files (a copy of this machine's /usr/lib/python3*
# trees), built into an OCI layout by strata, by umoci and by buildah; cold build and
# no-op rebuild for each, timed with hyperfine, summarised as a markdown table.
#
#   bench/build-tree.sh                      # all three tools
#   TOOLS="umoci buildah" bench/build-tree.sh
#   STRATA=path/to/strata RUNS=10 bench/build-tree.sh
#
# Environment:
#   STRATA  strata binary (default target/release/strata; build it with cargo build --release)
#   TOOLS   which of "strata umoci buildah" to run (default all three)
#   RUNS    timed runs per benchmark (default 5); one warm-up run precedes them
#   KEEP=1  keep the outputs and caches afterwards (the tree copy is always kept for the
#           next run; rm -rf bench/work drops it)
#
# Everything is written under bench/work/ (git-ignored). Every tool compresses its layer
# with gzip so that the same work is measured. The files are in the page cache for all
# runs: this measures the builders, not the disk.
#
# "No-op rebuild" is the same command run again with its outputs (and, for strata, its
# cache) left in place. umoci and buildah have no build cache, so for them a rebuild redoes
# all the work; their two rows are there for the strata ratios.
#
# What is timed is what a user runs to build the layer, started without a shell
# (hyperfine -N): for strata one command, `strata build`; for umoci and buildah, whose
# build is a sequence of commands, this script's `_build` function, so their times include
# the start of bash (a few milliseconds, small beside their seconds). The first tables in
# BENCHMARKS.md timed every tool through `_build` under hyperfine's shell, which put those
# milliseconds on strata's no-op rebuild too.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SELF="$ROOT/bench/build-tree.sh"
WORK="$ROOT/bench/work"
TREE="$WORK/tree"
TARGET_DIR=/usr/lib/pytree
STRATA="${STRATA:-$ROOT/target/release/strata}"
TOOLS="${TOOLS:-strata umoci buildah}"
RUNS="${RUNS:-5}"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

buildah_() {
    buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/runroot" \
        --storage-driver vfs "$@"
}

# --- one build of each tool; called by hyperfine as "$SELF" _build TOOL -------------------

# strata's build as an argument list: timed directly (see above), and run by _build.
strata_cmd=("$STRATA" build "$WORK/tree.yaml" -o "$WORK/out-strata" --cache "$WORK/cache-strata"
    --compression gzip)

build_strata() {
    "${strata_cmd[@]}" >/dev/null
}

build_umoci() {
    local layout="$WORK/out-umoci"
    rm -rf "$layout"
    umoci init --layout "$layout"
    umoci new --image "$layout:t"
    umoci insert --image "$layout:t" "$TREE" "$TARGET_DIR" >/dev/null
}

build_buildah() {
    local out="$WORK/out-buildah"
    rm -rf "$out"
    BUILDAH_CTR="$(buildah_ from scratch)"
    # Remove the working container whatever happens, so runs do not pile up in storage.
    trap 'buildah_ rm "$BUILDAH_CTR" >/dev/null 2>&1 || true' EXIT
    buildah_ copy --quiet "$BUILDAH_CTR" "$TREE" "$TARGET_DIR" >/dev/null
    buildah_ commit --quiet --disable-compression=false "$BUILDAH_CTR" "oci:$out:t" >/dev/null
}

# Wipes what a cold build must not find.
clean_strata() { rm -rf "$WORK/out-strata" "$WORK/cache-strata"; }
clean_umoci() { rm -rf "$WORK/out-umoci"; }
clean_buildah() {
    if [ -d "$WORK/buildah/root" ]; then
        buildah_ rm --all >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK/out-buildah" "$WORK/buildah"
}

if [ "${1:-}" = _build ] || [ "${1:-}" = _clean ]; then
    case "${2:-}" in
        strata | umoci | buildah) "${1#_}_$2" ;;
        *) die "unknown tool ${2:-}" ;;
    esac
    exit 0
fi

# --- setup --------------------------------------------------------------------------------

command -v hyperfine >/dev/null || die "hyperfine not found (hint: apt-get install hyperfine)"
command -v jq >/dev/null || die "jq not found (hint: apt-get install jq)"
for tool in $TOOLS; do
    case "$tool" in
        strata)
            [ -x "$STRATA" ] || die "strata binary not found at $STRATA (hint: cargo build --release, or set STRATA=path, or TOOLS=\"umoci buildah\")" ;;
        umoci | buildah)
            command -v "$tool" >/dev/null || die "$tool not found (hint: apt-get install $tool)" ;;
        *) die "unknown tool $tool in TOOLS (use strata, umoci, buildah)" ;;
    esac
done

mkdir -p "$WORK"
if [ ! -d "$TREE" ]; then
    sources=(/usr/lib/python3*)
    [ -e "${sources[0]}" ] || die "no /usr/lib/python3* trees to copy"
    mkdir -p "$TREE.partial"
    cp -a "${sources[@]}" "$TREE.partial/"
    # Every builder gets the same self-contained tree: a symlink that leaves it (absolute,
    # like Debian's sitecustomize.py, or dangling) becomes a copy of its target if that is
    # a regular file, and is dropped otherwise (strata refuses links out of the recipe dir).
    partial="$(realpath "$TREE.partial")"
    while IFS= read -r -d '' link; do
        target="$(realpath -m "$link")"
        case "$target" in "$partial"/*) continue ;; esac
        if [ -f "$target" ]; then
            cp --remove-destination "$target" "$link"
        else
            rm -f "$link"
        fi
    done < <(find "$TREE.partial" -type l -print0)
    mv "$TREE.partial" "$TREE"
fi
cat >"$WORK/tree.yaml" <<YAML
name: pytree
tag: bench
layers:
  - name: tree
    steps:
      - copy: {src: tree/, dest: $TARGET_DIR/}
YAML

tree_size="$(du -sh --apparent-size "$TREE" | cut -f1)"
tree_files="$(find "$TREE" -type f | wc -l)"
echo "tree: $tree_size in $tree_files files ($TREE)" >&2

# --- timing -------------------------------------------------------------------------------

q() { printf '%q' "$1"; }

# The command line hyperfine runs (without a shell, so words are split on spaces: no path
# here may hold one).
timed() {
    case "$1" in
        strata) echo "${strata_cmd[*]}" ;;
        *) echo "$SELF _build $1" ;;
    esac
}
case "$ROOT$STRATA" in
    *" "*) die "bench paths may not contain spaces (hyperfine -N splits on them): $ROOT, $STRATA" ;;
esac

for tool in $TOOLS; do
    echo "== $tool: cold build" >&2
    hyperfine -N --style basic --runs "$RUNS" --warmup 1 \
        --prepare "$(q "$SELF") _clean $tool" \
        --export-json "$WORK/$tool-cold.json" \
        "$(timed "$tool")" >&2
    echo "== $tool: no-op rebuild" >&2
    hyperfine -N --style basic --runs "$RUNS" --warmup 1 \
        --export-json "$WORK/$tool-noop.json" \
        "$(timed "$tool")" >&2
done

# A fast wrong answer is no answer: each output must be an image skopeo can read.
if command -v skopeo >/dev/null; then
    for tool in $TOOLS; do
        skopeo inspect "oci:$WORK/out-$tool" >/dev/null ||
            die "$tool's output $WORK/out-$tool is not a readable OCI image"
    done
fi

# --- summary ------------------------------------------------------------------------------

median() { jq -r '.results[0].median' "$WORK/$1-$2.json"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
fmt() { awk -v a="$1" 'BEGIN { printf "%.3f", a }'; }
has() { case " $TOOLS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
out_size() { du -sb "$WORK/out-$1" | cut -f1 | awk '{ printf "%.1f MB", $1 / 1e6 }'; }

echo
echo "### One ~$tree_size layer ($tree_files files): cold build and no-op rebuild"
echo
echo "$RUNS runs each after one warm-up; median wall time in seconds (min–max)."
echo
echo "| tool | cold build | no-op rebuild | no-op / cold | output size |"
echo "| --- | --- | --- | --- | --- |"
for tool in $TOOLS; do
    c="$(median "$tool" cold)"
    n="$(median "$tool" noop)"
    printf '| %s | %s (%s–%s) | %s (%s–%s) | %s | %s |\n' "$tool" \
        "$(fmt "$c")" "$(fmt "$(jq -r '.results[0].min' "$WORK/$tool-cold.json")")" \
        "$(fmt "$(jq -r '.results[0].max' "$WORK/$tool-cold.json")")" \
        "$(fmt "$n")" "$(fmt "$(jq -r '.results[0].min' "$WORK/$tool-noop.json")")" \
        "$(fmt "$(jq -r '.results[0].max' "$WORK/$tool-noop.json")")" \
        "$(ratio "$n" "$c")" "$(out_size "$tool")"
done
if has strata; then
    echo
    echo "| ratio (median / median) | cold | no-op rebuild |"
    echo "| --- | --- | --- |"
    for other in umoci buildah; do
        has "$other" || continue
        printf '| strata / %s | %s | %s |\n' "$other" \
            "$(ratio "$(median strata cold)" "$(median "$other" cold)")" \
            "$(ratio "$(median strata noop)" "$(median "$other" noop)")"
    done
fi
echo
echo "umoci and buildah have no build cache: their no-op rebuild repeats the whole build."

if [ "${KEEP:-0}" != 1 ]; then
    for tool in $TOOLS; do "$SELF" _clean "$tool"; done
fi
