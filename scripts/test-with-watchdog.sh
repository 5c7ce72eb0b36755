#!/usr/bin/env bash
# Runs the test suite (`swift test`, arguments passed through) with its output line-buffered into
# .build/test.log, under a watchdog: if the suite has not finished after TEST_TIMEOUT seconds
# (default 40 min; a full run takes about 30 s here, 4 min with the test process held to 0.2
# CPU), it prints what every test process is doing — the process tree and every thread's stack
# (gdb) — then stops the suite and fails. A hung test then shows up in CI's log as a diagnosis
# instead of a silent timeout of the whole job.
set -uo pipefail
cd "$(dirname "$0")/.."
TEST_TIMEOUT=${TEST_TIMEOUT:-2400}
SWIFT=${SWIFT:-swift}
mkdir -p .build

# stdbuf: the test runner's stdout is a pipe; line buffering keeps the log whole up to a hang.
( stdbuf -oL -eL "$SWIFT" test "$@" 2>&1 | tee .build/test.log; exit "${PIPESTATUS[0]}" ) &
suite=$!

demangle() { if command -v swift-demangle >/dev/null; then swift-demangle --simplified; else cat; fi; }

diagnose() {
    echo
    echo "=== test watchdog: the suite is still running after ${TEST_TIMEOUT} s; what it is doing:"
    ps -eo pid,ppid,etimes,stat,wchan:20,args --forest | grep -v ' ps -eo' | cut -c1-220
    for pid in $(pgrep -f 'PackageTests.xctest|sandboxer wasm-worker'); do
        echo "=== threads of pid $pid: $(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c1-200)"
        if command -v gdb >/dev/null; then
            timeout 120 gdb -p "$pid" -batch -nx -ex 'set pagination off' -ex 'thread apply all bt 30' 2>/dev/null \
                | grep -E '^(Thread|#)' | demangle | cut -c1-240
        else
            for t in /proc/$pid/task/*; do echo "$t: $(cat $t/comm) $(cat $t/wchan 2>/dev/null)"; done
        fi
    done
}

waited=0
while kill -0 "$suite" 2>/dev/null; do
    sleep 5
    waited=$((waited + 5))
    if (( waited >= TEST_TIMEOUT )); then
        diagnose
        pkill -TERM -f 'PackageTests.xctest'; sleep 5; pkill -KILL -f 'PackageTests.xctest|bin/swift-test'
        wait "$suite" 2>/dev/null
        echo "=== test watchdog: suite stopped after ${TEST_TIMEOUT} s (see the stacks above)"
        exit 1
    fi
done
wait "$suite"
