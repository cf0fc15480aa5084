#!/usr/bin/env bash
# Benchmark 2: `strata lab` with 10, 25 and 50 minions on this machine, side by side with a
# plain baseline on the same images: containers started by this shell script with the
# docker CLI, the master with auto_accept on, minions found by `salt '*' test.ping`.
#
#   bench/lab-scale.sh                   # N = 10 25 50
#   SIZES="10" bench/lab-scale.sh
#
# Environment:
#   STRATA  strata binary (default target/release/strata)
#   SIZES   minion counts (default "10 25 50")
#   RUNNERS "strata baseline" (default), or one of them
#   CACHE   strata cache with the Salt images built (default target/lab-cache, the one the
#           tests fill; the first run builds them)
#
# Measured per N, for both:
#   up      from the first container created to every minion answering test.ping
#           (strata: the whole `strata lab up`, with the images' bytecode caches kept from
#           the `up` before; "up, cold" is the `up` before, with none: `lab gc` first)
#   apply   one highstate of bench/lab-formula (a file.managed, a pkg-free cmd.run with
#           `unless`, a grain-targeted state), every minion
#   again   the second highstate (strata: the idempotence run)
#   PSS     the mean proportional set size of a minion container's processes, MB, read from
#           /proc/PID/smaps_rollup of every process in the container's cgroup after the
#           second apply
# and strata's whole `lab test` time. Output: a markdown table on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STRATA="${STRATA:-$ROOT/target/release/strata}"
SIZES="${SIZES:-10 25 50}"
RUNNERS="${RUNNERS:-strata baseline}"
for r in $RUNNERS; do
    case "$r" in strata | baseline) ;; *) echo "error: RUNNERS: unknown runner $r (strata, baseline)" >&2; exit 2 ;; esac
done
CACHE="${CACHE:-$ROOT/target/lab-cache}"
WORK="$ROOT/bench/work/lab"
FORMULA="$ROOT/bench/lab-formula"
MASTER_IMG=strata-lab/bench-master:latest
MINION_IMG=strata-lab/bench-minion:latest

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ -x "$STRATA" ] || die "no strata binary at $STRATA (cargo build --release)"
command -v docker >/dev/null || die "docker CLI needed for the baseline"
mkdir -p "$WORK"

# Mean PSS (MB) of the containers named by the arguments.
pss_mb() {
    local total=0 n=0 c pid kb
    for c in "$@"; do
        local sum=0
        for pid in $(docker top "$c" -eo pid | tail -n +2); do
            kb=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
            sum=$((sum + ${kb:-0}))
        done
        total=$((total + sum))
        n=$((n + 1))
    done
    awk -v t="$total" -v n="$n" 'BEGIN { printf "%.0f", t / n / 1024 }'
}

lab_file() {
    local n="$1" dir
    dir="$WORK/strata-$n"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -a "$FORMULA/salt" "$FORMULA/pillar" "$dir/"
    cat >"$dir/lab.yaml" <<EOF
name: bench$n
images:
  master: $ROOT/recipes/salt-master.yaml
  minion: $ROOT/recipes/salt-minion-bookworm.yaml
master: {image: master}
minions:
  - {id: "m{n:02}", count: $n, image: minion, grains: {roles: [web]}}
timeouts: {start: 600, apply: 600}
EOF
    echo "$dir"
}

run_strata() {
    local n="$1" dir t0 cold up apply again pss total log
    dir="$(lab_file "$n")"
    log="$WORK/strata-$n.log"
    "$STRATA" --cache "$CACHE" lab down "$dir" >/dev/null 2>&1 || true
    # The images are built and loaded already (prepare_baseline_images); no bytecode cache.
    "$STRATA" --cache "$CACHE" lab gc >/dev/null
    t0=$(now)
    "$STRATA" --cache "$CACHE" lab up --locked "$dir" >"$log" 2>&1
    cold=$(since "$t0")
    "$STRATA" --cache "$CACHE" lab down "$dir" >>"$log" 2>&1
    t0=$(now)
    "$STRATA" --cache "$CACHE" lab up --locked "$dir" >>"$log" 2>&1
    up=$(since "$t0")
    t0=$(now)
    "$STRATA" --cache "$CACHE" lab apply "$dir" >>"$log" 2>&1 || die "strata apply failed (N=$n): $log"
    apply=$(since "$t0")
    t0=$(now)
    "$STRATA" --cache "$CACHE" lab apply "$dir" >>"$log" 2>&1 || die "strata apply failed (N=$n): $log"
    again=$(since "$t0")
    pss=$(pss_mb $(docker ps --filter "label=io.strata.lab=bench$n" --filter "label=io.strata.lab.role=minion" --format '{{.Names}}'))
    "$STRATA" --cache "$CACHE" lab down "$dir" >>"$log" 2>&1
    t0=$(now)
    "$STRATA" --cache "$CACHE" lab test --locked "$dir" >>"$log" 2>&1 || die "strata lab test failed (N=$n): $log"
    total=$(since "$t0")
    echo "| strata lab | $n | $cold | $up | $apply | $again | $total | $pss |"
}

run_baseline() {
    local n="$1" net="bench-baseline-$n" t0 up apply again pss i answered
    local conf="$WORK/baseline-master.conf"
    printf 'auto_accept: True\nfile_roots: {base: [/srv/salt]}\npillar_roots: {base: [/srv/pillar]}\n' >"$conf"
    cleanup_baseline "$n"
    t0=$(now)
    docker network create --internal "$net" >/dev/null
    docker run -d --init --name "$net-master" --hostname salt --network "$net" \
        --network-alias salt -v "$conf:/etc/salt/master.d/bench.conf:ro" \
        -v "$FORMULA/salt:/srv/salt:ro" -v "$FORMULA/pillar:/srv/pillar:ro" \
        "$MASTER_IMG" salt-master >/dev/null
    for i in $(seq -w 1 "$n"); do
        docker run -d --init --name "$net-m$i" --hostname "m$i" --network "$net" \
            "$MINION_IMG" sh -c "printf 'roles: [web]\n' > /etc/salt/grains; exec salt-minion" >/dev/null
    done
    while :; do
        answered=$(docker exec "$net-master" salt --out=json --static -t 5 '*' test.ping 2>/dev/null |
            grep -c ': true' || true)
        [ "$answered" -ge "$n" ] && break
        sleep 1
    done
    up=$(since "$t0")
    t0=$(now)
    docker exec "$net-master" salt --out=json --static -t 600 '*' state.apply >/dev/null
    apply=$(since "$t0")
    t0=$(now)
    docker exec "$net-master" salt --out=json --static -t 600 '*' state.apply >/dev/null
    again=$(since "$t0")
    pss=$(pss_mb $(docker ps --filter "name=$net-m" --format '{{.Names}}'))
    cleanup_baseline "$n"
    echo "| baseline (shell, auto_accept) | $n | - | $up | $apply | $again | - | $pss |"
}

cleanup_baseline() {
    local net="bench-baseline-$1"
    docker ps -aq --filter "name=^$net-" | xargs -r docker rm -f >/dev/null
    docker network rm "$net" >/dev/null 2>&1 || true
}

# The baseline uses the images strata made: tag them under fixed names.
prepare_baseline_images() {
    local dir
    dir="$(lab_file 1)"
    "$STRATA" --cache "$CACHE" lab up --locked "$dir" >/dev/null 2>&1
    "$STRATA" --cache "$CACHE" lab down "$dir" >/dev/null 2>&1
    docker tag strata-lab/bench1-master:latest "$MASTER_IMG"
    docker tag strata-lab/bench1-minion:latest "$MINION_IMG"
}

trap 'for n in $SIZES; do cleanup_baseline "$n"; "$STRATA" --cache "$CACHE" lab down "$WORK/strata-$n" >/dev/null 2>&1 || true; done' EXIT

prepare_baseline_images
echo "| runner | minions | up, cold (s) | up, all answering (s) | highstate (s) | second highstate (s) | whole \`lab test\` (s) | PSS per minion (MB) |"
echo "|---|---|---|---|---|---|---|---|"
for n in $SIZES; do
    for r in $RUNNERS; do
        "run_$r" "$n"
    done
done
