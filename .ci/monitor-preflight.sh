#!/usr/bin/env bash
# Before `make monitor` in CI: run the given preflight command (`mlops monitor --preflight`).
# Ready: ready=true to $GITHUB_OUTPUT. Nothing to measure (exit 3: no deployed model pulled,
# no current-data source configured or reachable): ready=false, a warning annotation and a
# note in the job summary, exit 0 -- a fresh template must not fail red every day. Any other
# failure (bad params.yaml: exit 2) fails the step.
set -uo pipefail

output=${GITHUB_OUTPUT:-/dev/null}
summary=${GITHUB_STEP_SUMMARY:-/dev/null}

message=$("$@" 2>&1) && code=0 || code=$?
if [[ $code == 0 ]]; then
  echo "ready=true" >>"$output"
  echo "monitor-preflight: ready"
  exit 0
fi
if [[ $code != 3 ]]; then
  printf '%s\n' "$message" >&2
  exit "$code"
fi
reason=$(printf '%s\n' "$message" | grep -m1 'monitor preflight:' || printf '%s' "$message" | tail -n1)
echo "ready=false" >>"$output"
echo "::warning title=Monitoring skipped::${reason//$'\n'/ }"
{
  echo "## Monitoring skipped"
  echo
  echo "Nothing to measure on this runner, so the monitor did not run:"
  echo
  echo "> ${reason}"
  echo
  echo 'See docs/monitoring.md (the scheduled run) to configure it.'
} >>"$summary"
