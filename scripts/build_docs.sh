#!/usr/bin/env bash
# Build the docs site as a reader gets it and check it: Sphinx with every warning an error (a broken internal link,
# a docstring that does not parse, a tutorial cell that raises: the tutorials execute), then the built site opened in
# Debian's chromium (docs/check_site.py: every page loads without console errors, every internal link and anchor
# resolves, screenshots of the home page, a tutorial and an API page).
# Usage: bash scripts/build_docs.sh [OUT]   (default docs/_build/html; needs: bash scripts/setup.sh docs, or dev)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/_build/html}"
# a fresh site (pages left from an earlier build would be checked too): only a folder Sphinx built is removed
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/.buildinfo" ]; then
  echo "$out: not a Sphinx output folder; give a new one" >&2; exit 2
fi
rm -rf "$out"
start=$(date +%s)
.venv/bin/python -m sphinx -E -W --keep-going -b html -d "$out/../doctrees" docs "$out"
echo "built in $(( $(date +%s) - start )) s: $out/index.html"
.venv/bin/python docs/check_site.py "$out" --screenshots "$out/../screenshots"
