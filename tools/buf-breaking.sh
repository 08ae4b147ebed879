#!/usr/bin/env bash
# `buf breaking`: the protos of the work tree against those this work started from: the
# merge base with main on a branch, the commit before on main itself (a merge's first parent:
# main before the merge). A clone too shallow to have that commit skips the check, saying so.
set -euo pipefail
buf=$(realpath "$1")
cd "$(dirname "$0")/.."
head=$(git rev-parse HEAD)
base=""
if git rev-parse -q --verify main^{commit} >/dev/null; then
    base=$(git merge-base HEAD main || true)
fi
if [[ -z "$base" || "$base" == "$head" ]]; then
    base=$(git rev-parse -q --verify HEAD~1^{commit} || true)
fi
if [[ -z "$base" ]] || ! git cat-file -e "$base:protos" 2>/dev/null; then
    echo "buf breaking: no earlier protos to compare with (a shallow clone?); skipped"
    exit 0
fi
against=$(mktemp -d)
trap 'rm -rf "$against"' EXIT
git archive "$base" protos | tar -x -C "$against"
# A file's first declaration of a language option changes no code generated from this
# repository before (there was none for those languages), so the protos compared against take
# the work tree's declaration where they had none; changing or dropping one is still flagged.
for file in $(cd protos && find . -name '*.proto'); do
    old="$against/protos/$file"
    [[ -f "$old" ]] || continue
    for option in go_package java_package java_multiple_files csharp_namespace; do
        line=$(grep -m1 "^option $option = " "protos/$file" || true)
        if [[ -n "$line" ]] && ! grep -q "^option $option = " "$old"; then
            printf '%s\n' "$line" >>"$old"
        fi
    done
done
cd protos
"$buf" breaking --against "$against/protos"
echo "buf breaking: no breaking change against ${base:0:12}"
