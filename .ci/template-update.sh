#!/usr/bin/env bash
# Called by `make template-pr` (.github/workflows/template-update.yml) with the command that
# runs copier: when the copier template this project was generated from has a newer version,
# run `copier update` on a branch, commit the result (conflicts stay inline, listed in the pull
# request), push the branch and open a pull request with gh. Nothing to do: exit 0, no branch.
# Not a generated project (no .copier-answers.yml, e.g. the template itself): a notice, exit 0.
set -euo pipefail
copier=("$@")
answers=.copier-answers.yml

if [[ ! -f $answers ]]; then
  echo "template-update: no $answers: not a project generated with copier, nothing to update"
  exit 0
fi
status=0
"${copier[@]}" check-update --quiet || status=$?
if [[ $status == 0 ]]; then
  echo "template-update: the project is on the newest template version"
  exit 0
elif [[ $status != 2 ]]; then
  echo "template-update: copier check-update failed (exit $status)" >&2
  exit "$status"
fi

base=$(git rev-parse --abbrev-ref HEAD)
"${copier[@]}" update --trust --defaults --conflict inline --quiet
version=$(sed -n 's/^_commit: *//p' "$answers")
branch="template-update/$version"
if git ls-remote --exit-code --heads origin "$branch" >/dev/null 2>&1; then
  echo "template-update: branch $branch exists already (a pull request is open or was closed)"
  git reset -q --hard && git clean -qfd
  exit 0
fi
git switch -q -c "$branch"
conflicts=$(git diff --name-only --diff-filter=U) # copier marks conflicted files unmerged
git add -A
git -c user.name="${GIT_AUTHOR_NAME:-template-update}" \
  -c user.email="${GIT_AUTHOR_EMAIL:-template-update@users.noreply.github.com}" \
  commit -q -m "template: update to $version"
[[ -z ${GH_TOKEN:-} ]] || gh auth setup-git # push with the token (checkout keeps no credentials)
git push -q origin "$branch"

body=$(mktemp)
{
  echo "\`copier update\` to template version $version (docs/template.md)."
  echo
  if [[ -n $conflicts ]]; then
    echo "Conflicts (both sides kept between \`<<<<<<< before updating\` and \`>>>>>>> after updating\`):"
    echo
    printf -- '- `%s`\n' $conflicts
    echo
    echo "Resolve them on this branch: keep the right lines, delete the markers, commit."
  else
    echo "No conflicts: your changes were re-applied on top of the new version."
  fi
} >"$body"
gh pr create --base "$base" --head "$branch" --title "template: update to $version" --body-file "$body"
