#!/usr/bin/env bash
# After a failed `make monitor`: open the one open monitoring issue or comment on it (never a
# duplicate), then dispatch the retraining workflow when DISPATCH_RETRAIN=true and the summary
# says retrain (also when the batch broke the contract too: status contract_violation hides
# a crossed drift/quality threshold, `retrain` does not). Needs `gh` with GH_TOKEN
# (issues: write; actions: write to dispatch).
# Exit 1 when there is no summary: the monitor failed before measuring (config, missing model).
set -euo pipefail

dir=reports/monitoring
summary=$dir/summary.json
label=${MONITOR_ISSUE_LABEL:-model-monitoring}

if [[ ! -f $summary ]]; then
  echo "monitor-alert: no $summary: the monitor failed before measuring (see its log)" >&2
  exit 1
fi
read -r status retrain < <(python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))
print(s["status"], str(s.get("retrain", False)).lower())' "$summary")
if [[ $status == ok ]]; then
  echo "monitor-alert: status ok, nothing to report"
  exit 0
fi

body=$dir/issue.md
{
  cat "$dir/summary.md"
  echo
  echo "Evidently report: the \`monitoring-report\` artifact of ${RUN_URL:-this run}."
} >"$body"

gh label create "$label" --color D93F0B --description "Opened by the monitor workflow" \
  >/dev/null 2>&1 || true
number=$(gh issue list --label "$label" --state open --limit 1 --json number --jq '.[0].number // empty')
if [[ -n $number ]]; then
  gh issue comment "$number" --body-file "$body"
  echo "monitor-alert: commented on issue #$number ($status)"
else
  gh issue create --title "Model monitoring: $status" --label "$label" --body-file "$body"
fi

if [[ $retrain == true && ${DISPATCH_RETRAIN:-false} == true ]]; then
  gh workflow run "${RETRAIN_WORKFLOW:-main.yml}" --ref "${RETRAIN_REF:-main}"
  echo "monitor-alert: dispatched ${RETRAIN_WORKFLOW:-main.yml}"
fi
