#!/bin/sh
# Regenerate the architecture pictures from their graphviz sources
# (docs/*.dot -> .svg and .png beside them).  Needs `dot` (Debian: graphviz).
set -eu
cd "$(dirname "$0")"
for source in architecture.dot one-port.dot; do
    name="${source%.dot}"
    dot -Tsvg "$source" -o "$name.svg"
    dot -Tpng -Gdpi=110 "$source" -o "$name.png"
    echo "docs/$name.svg docs/$name.png"
done
