#!/usr/bin/env bash
# Debian packages the test suite drives for real: dcmtk (storescu, findscu, movescu,
# storescp) as the DICOM peer of the archive. Installed once, only when missing.
set -euo pipefail

if ! command -v /usr/bin/storescu >/dev/null 2>&1; then
  echo "installing dcmtk (Debian) for the DIMSE tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q dcmtk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q dcmtk >/dev/null; }
fi
