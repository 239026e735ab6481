#!/usr/bin/env bash
# The OHIF Viewer (v2, its self-contained UMD build, from the npm registry) for the
# browser test of the DICOMweb API: fetched once into .cache/ohif/, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.12.51
DEST=.cache/ohif/$VERSION
if [ ! -f "$DEST/index.umd.js" ]; then
  echo "fetching @ohif/viewer@$VERSION from the npm registry for the OHIF test" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@ohif/viewer@$VERSION" >/dev/null && tar xzf ohif-viewer-$VERSION.tgz)
  mkdir -p "$DEST"
  cp "$tmp/package/dist/index.umd.js" "$DEST/"
  rm -rf "$tmp"
fi
