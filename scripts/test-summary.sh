#!/usr/bin/env bash
# Prints the last lines of `make test`: which part failed and, for the Swift suite, the lines that
# say which tests (from .build/test.log), so a CI log cut to its end still names the failure.
# Usage: scripts/test-summary.sh SWIFT_STATUS API_STATUS; exits non-zero when either is.
set -uo pipefail
cd "$(dirname "$0")/.."
swift=${1:-1} api=${2:-1}
echo "== summary"
if [ "$swift" -eq 0 ]; then
    echo "Swift suite: passed"
else
    echo "Swift suite: FAILED (exit $swift); the failing tests' lines from .build/test.log:"
    grep -aE '✘|Test Case .* failed|: error: |Fatal error|unexpected signal|test watchdog' .build/test.log 2>/dev/null \
        | grep -av 'with 0 issues' | cut -c1-300 | tail -40
fi
if [ "$api" -eq 0 ]; then echo "API tests (pytest, E2B SDKs, schemathesis): passed"; else echo "API tests: FAILED (exit $api; see their output above)"; fi
[ "$swift" -eq 0 ] && [ "$api" -eq 0 ]
