#!/usr/bin/env bash
# Publish the gate report: append it to the job summary ($GITHUB_STEP_SUMMARY) and keep ONE
# pull-request comment up to date (found by the marker on the report's first line; edited, not
# re-posted, on every push) through the GitHub CLI. Without GITHUB_STEP_SUMMARY it prints the
# report; without PR_NUMBER / GH_TOKEN / GITHUB_REPOSITORY (a local run) it skips the comment.
# A fork's pull request gets a read-only token: the comment is skipped, the summary stays.
#
# In CI the workflow passes the outcomes of its steps (TESTS_OUTCOME, METRICS_OUTCOME,
# GATE_OUTCOME, REPRO_OUTCOME: success | failure | skipped | cancelled). When the gate did not
# run on freshly reproduced metrics, a "not run" report replaces the comment: a stale report
# (from an earlier push or checked out with the branch) is never published as this one.
set -euo pipefail
report=${1:-reports/gate.md}
# the model card's changes against the base branch (`make card-diff`), appended when the
# pipeline was reproduced in this job (never a card diff of an earlier run)
card_diff=${2:-}
marker='<!-- mlops-gate-report -->'
gate=${GATE_OUTCOME:-}
if [ -n "$gate" ] && { [ "$gate" != success ] && [ "$gate" != failure ] || [ ! -s "$report" ]; }; then
  if [ "$gate" = failure ]; then
    why="the gate step failed before writing a report (see its log)"
  else
    why="the pipeline did not reproduce the metrics (\`make repro-evaluate\`: ${METRICS_OUTCOME:-not run})"
  fi
  published=$(mktemp)
  printf '%s\n### ⚠️ Metric review not run\n\n%s, so no comparison with the base branch was made.\n' \
    "$marker" "$why" >"$published"
  echo "::warning title=Metric review not run::$why"
elif [ ! -s "$report" ]; then
  echo "pr-report: $report is missing (did the gate run?)" >&2
  exit 1
else
  published=$(mktemp)
  cp "$report" "$published"
fi
if [ -n "$card_diff" ] && [ -s "$card_diff" ] && [ "${REPRO_OUTCOME:-success}" = success ]; then
  printf '\n' >>"$published"
  cat "$card_diff" >>"$published"
fi
warnings=()
[ "${TESTS_OUTCOME:-success}" = failure ] && warnings+=("the checks (\`make lint\`, \`make typecheck\`, \`make test\`) failed: see their jobs.")
[ "${REPRO_OUTCOME:-success}" = failure ] \
  && warnings+=("\`make repro\` (the gate stage and packaging) failed: see the job log.")
if [ "${#warnings[@]}" -gt 0 ]; then
  printf '\n#### Other steps\n\n' >>"$published"
  printf -- '- ⚠️ %s\n' "${warnings[@]}" >>"$published"
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$published" >>"$GITHUB_STEP_SUMMARY"
  echo "pr-report: report added to the job summary"
else
  cat "$published"
fi
if [ -z "${PR_NUMBER:-}" ] || [ -z "${GH_TOKEN:-}" ] || [ -z "${GITHUB_REPOSITORY:-}" ]; then
  echo "pr-report: PR_NUMBER, GH_TOKEN or GITHUB_REPOSITORY not set: no pull-request comment"
  exit 0
fi
comments="repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments"
query=".[] | select(.user.login == \"github-actions[bot]\" and (.body | startswith(\"$marker\"))) | .id"
# a failed lookup must not post a second comment: skip the comment (the summary has the report)
if ! found=$(gh api --paginate "$comments" --jq "$query"); then
  echo "::warning title=Gate report comment skipped::could not list the comments of pull request $PR_NUMBER; the report is in the job summary"
  exit 0
fi
id=$(head -n 1 <<<"$found")
if [ -n "$id" ]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" -F "body=@$published" >/dev/null \
    && echo "pr-report: updated comment $id" \
    || echo "pr-report: could not update comment $id (read-only token?)"
else
  gh api --method POST "$comments" -F "body=@$published" >/dev/null \
    && echo "pr-report: commented on pull request $PR_NUMBER" \
    || echo "pr-report: could not comment (a fork's pull request has a read-only token)"
fi
