#!/usr/bin/env bash
# Smoke test of the serving image before it is pushed: start $IMAGE (Docker) on 127.0.0.1,
# wait for /readyz, POST a valid record to /predict (a prediction must come back) and an invalid
# one (HTTP 400 expected). SMOKE_URL=http://127.0.0.1:3000 tests an already running server
# instead (e.g. `bentoml serve`), no Docker needed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
url=${SMOKE_URL:-}
if [ -z "$url" ]; then
  : "${IMAGE:?set IMAGE (the image to start) or SMOKE_URL (a running server)}"
  name="mlops-smoke-$$"
  docker run --detach --name "$name" --publish 127.0.0.1:3000:3000 "$IMAGE" >/dev/null
  cleanup() {
    status=$?
    [ "$status" -eq 0 ] || docker logs "$name" 2>&1 | tail -n 50
    docker rm --force "$name" >/dev/null
  }
  trap cleanup EXIT
  url=http://127.0.0.1:3000
fi
ready=""
for _ in $(seq 1 90); do
  if curl --silent --fail "$url/readyz" >/dev/null; then ready=1 && break; fi
  sleep 2
done
[ -n "$ready" ] || { echo "smoke-test: $url/readyz not ready after 180 s" >&2; exit 1; }
body=$(curl --silent --show-error --fail -X POST "$url/predict" \
  -H 'content-type: application/json' -d @"$here/predict-example.json")
grep -q '"prediction"' <<<"$body" || { echo "smoke-test: unexpected /predict answer: $body" >&2; exit 1; }
status=$(curl --silent --output /dev/null --write-out '%{http_code}' -X POST "$url/predict" \
  -H 'content-type: application/json' -d '{"records": [{"amount": "not a number"}]}')
[ "$status" = 400 ] || { echo "smoke-test: a bad request got HTTP $status, expected 400" >&2; exit 1; }
echo "smoke-test: $url is ready, /predict answered, a bad request got 400"
