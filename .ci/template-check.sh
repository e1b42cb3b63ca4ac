#!/usr/bin/env bash
# The copier template, as a user meets it (docs/template.md): generate two projects from this
# working tree (with the demo; without it and without Kubernetes), install each with the warm
# uv cache and run its `smoke` tests. Called by .ci/run after the root's own tests; never
# generated into a project. Usage: .ci/template-check.sh [OUT_DIR] (default: a temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-$(mktemp -d)}
# uv from PATH, else the one .ci/run bootstrapped; neither: each project bootstraps its own
uv=$(command -v uv || true)
[[ -n $uv || ! -x $root/.tools/bin/uv ]] || uv=$root/.tools/bin/uv
copier=("$root/.venv/bin/copier" copy --trust --defaults --quiet)
export UV_COMPILE_BYTECODE=0 # a generated venv is used once here: no minutes of .pyc compiling

check() {
  local name=$1
  shift
  local dest=$out/$name start=$SECONDS
  "${copier[@]}" --data project_name="$name" "$@" "$root" "$dest"
  git -C "$dest" init -q -b main
  git -C "$dest" add -A
  git -C "$dest" -c user.name=ci -c user.email=ci@localhost commit -qm "generated"
  make -C "$dest" install ${uv:+UV="$uv"} >"$dest.install.log" 2>&1 || {
    cat "$dest.install.log"
    return 1
  }
  # only the files holding smoke tests: collecting the whole suite imports every library
  (cd "$dest" && .venv/bin/pytest -p no:xdist -q -m smoke $(grep -rl --include='test_*.py' 'pytest.mark.smoke' tests))
  echo "template-check: $name generated, installed and tested in $((SECONDS - start)) s"
}

check fraud-demo --data package_name=fraud_demo
check churn-bare --data package_name=churn_bare --data include_demo=false --data kubernetes=false
