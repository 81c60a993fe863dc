#!/usr/bin/env bash
# Bounded fuzzing of every Fuzz target in the module, FUZZTIME each (make fuzz).
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" as -fuzztime runs out, with no failing input (golang/go#75804,
# fixed in Go 1.27); it shows up when workers are starved of CPU. Such a run
# is retried once and said so. A failure that writes an input under
# testdata/fuzz, any other failure, or the same failure twice fails the run.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $($GO list ./...); do
	for f in $($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
		for try in 1 2; do
			echo "fuzz $pkg $f ($FUZZTIME)"
			if $GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 5s "$pkg" 2>&1 | tee "$log"; then
				break
			fi
			if [ "$try" = 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
				echo "fuzz $pkg $f: 'context deadline exceeded' with no failing input (golang/go#75804): retrying once"
				continue
			fi
			echo "fuzz $pkg $f: FAILED" >&2
			exit 1
		done
	done
done
