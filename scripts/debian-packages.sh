#!/usr/bin/env bash
# Debian packages driven for real, installed once, only when missing:
#   (default)  dcmtk (storescu, findscu, movescu, storescp): the DICOM peer of the tests;
#              chromium: the browser of the OHIF viewer test (driven by Playwright)
#   orthanc    orthanc + orthanc-dicomweb: the peer of benchmarks/dicom.py
#   wrk        wrk: the devices' load generator of benchmarks/vitals.py
set -euo pipefail

install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }
}

if ! command -v /usr/bin/storescu >/dev/null 2>&1; then
  echo "installing dcmtk (Debian) for the DIMSE tests" >&2
  install dcmtk
fi
if ! command -v /usr/bin/chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian) for the browser tests" >&2
  install chromium
fi
if [ "${1:-}" = "orthanc" ] && [ ! -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
  echo "installing orthanc and orthanc-dicomweb (Debian) for the imaging benchmark" >&2
  install orthanc orthanc-dicomweb
fi
if [ "${1:-}" = "wrk" ] && ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian) for the vitals benchmark" >&2
  install wrk
fi
