#!/usr/bin/env bash
# Publish the gate report: append it to the job summary ($GITHUB_STEP_SUMMARY) and keep ONE
# pull-request comment up to date (found by the marker on the report's first line; edited, not
# re-posted, on every push) through the GitHub CLI. Without GITHUB_STEP_SUMMARY it prints the
# report; without PR_NUMBER / GH_TOKEN / GITHUB_REPOSITORY (a local run) it skips the comment.
# A fork's pull request gets a read-only token: the comment is skipped, the summary stays.
set -euo pipefail
report=${1:-reports/gate.md}
marker='<!-- mlops-gate-report -->'
if [ ! -s "$report" ]; then
  echo "pr-report: $report is missing (did the gate run?)" >&2
  exit 1
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$report" >>"$GITHUB_STEP_SUMMARY"
  echo "pr-report: report added to the job summary"
else
  cat "$report"
fi
if [ -z "${PR_NUMBER:-}" ] || [ -z "${GH_TOKEN:-}" ] || [ -z "${GITHUB_REPOSITORY:-}" ]; then
  echo "pr-report: PR_NUMBER, GH_TOKEN or GITHUB_REPOSITORY not set: no pull-request comment"
  exit 0
fi
comments="repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments"
query=".[] | select(.user.login == \"github-actions[bot]\" and (.body | startswith(\"$marker\"))) | .id"
id=$(gh api --paginate "$comments" --jq "$query" | head -n 1) || id=""
if [ -n "$id" ]; then
  gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$id" -F "body=@$report" >/dev/null \
    && echo "pr-report: updated comment $id" \
    || echo "pr-report: could not update comment $id (read-only token?)"
else
  gh api --method POST "$comments" -F "body=@$report" >/dev/null \
    && echo "pr-report: commented on pull request $PR_NUMBER" \
    || echo "pr-report: could not comment (a fork's pull request has a read-only token)"
fi
