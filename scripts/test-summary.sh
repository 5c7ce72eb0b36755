#!/usr/bin/env bash
# Prints the last lines of `make test`: which part failed and, for the Swift suite, the lines that
# say which tests (from .build/test.log), so a CI log cut to its end still names the failure.
# Usage: scripts/test-summary.sh SWIFT_STATUS API_STATUS; exits non-zero when either is.
set -uo pipefail
cd "$(dirname "$0")/.."
swift=${1:-1} api=${2:-1}
# The names of swift-testing tests with a "started" line and no "passed"/"failed"/"skipped" one.
unfinished_tests() {
    sed -n 's/^.*Test \(.*\) started\.$/S \1/p; s/^.*Test \(.*\) \(passed\|failed\|skipped\).*$/E \1/p' "$1" \
        | awk '$1 == "S" { sub(/^S /, ""); open[$0] = NR } $1 == "E" { sub(/^E /, ""); delete open[$0] }
               END { for (t in open) print open[t], t }' | sort -n | cut -d' ' -f2- | cut -c1-200
}
echo "== summary"
if [ "$swift" -eq 0 ]; then
    echo "Swift suite: passed"
else
    echo "Swift suite: FAILED (exit $swift); the failing tests' lines from .build/test.log:"
    grep -aE '✘|Test Case .* failed|: error: |Fatal error|unexpected signal|test watchdog' .build/test.log 2>/dev/null \
        | grep -av 'with 0 issues' | cut -c1-300 | tail -40
    # A crash (a signal) ends the process without a failing test's line: name the tests that had
    # started and not ended, and show the Swift runtime's crash report (its backtracer).
    if grep -aq 'unexpected signal' .build/test.log 2>/dev/null; then
        echo "-- tests started and not ended when the test process died:"
        unfinished_tests .build/test.log | tail -20
        echo "-- the crash report:"
        awk '/Program crashed/ { on = 1 } on && n < 80 { print; n++ }' .build/test.log | cut -c1-240
    fi
fi
if [ "$api" -eq 0 ]; then echo "API tests (pytest, E2B SDKs, schemathesis): passed"; else echo "API tests: FAILED (exit $api; see their output above)"; fi
[ "$swift" -eq 0 ] && [ "$api" -eq 0 ]
