#!/bin/sh
# run.sh SECONDS HARNESS... - runs each libFuzzer harness for SECONDS on a
# scratch copy of its seed corpus (tests/fuzz/corpus/NAME), so that what it
# discovers never lands in the repository. Prints one line per harness and
# exits non-zero if any of them found a crash or a property violation; the
# failing input is kept in build/fuzz/artifacts and the tail of the log shown.
set -u
seconds=$1
shift
here=$(dirname "$0")
artifacts=build/fuzz/artifacts
mkdir -p "$artifacts"
failed=0
for bin in "$@"; do
    name=$(basename "$bin")
    work=$(mktemp -d "${TMPDIR:-/tmp}/retrysafe-$name.XXXXXX")
    mkdir "$work/corpus"
    [ -d "$here/corpus/$name" ] && cp "$here/corpus/$name"/* "$work/corpus/" 2>/dev/null
    seeds=$(ls "$work/corpus" | wc -l)
    # -jobs=1 fork mode would hide the log; one process, one core.
    "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$name-" "$work/corpus" >"$work/log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
    units=$(ls "$work/corpus" | wc -l)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $name ok: ${runs:-?} inputs in ${seconds}s, corpus $seeds -> $units"
    else
        echo "fuzz: $name FAILED (exit $rc) after ${runs:-?} inputs; input in $artifacts:"
        tail -n 40 "$work/log"
        failed=1
    fi
    rm -rf "$work"
done
exit $failed
