#!/usr/bin/env bash
# Install hdhub with its test extras and run the whole test suite.
# This is the README's second set-up command, and what CI runs (.ci/run).
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k audit
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
bash scripts/services.sh
bash scripts/debian-packages.sh
bash scripts/ohif.sh

# In CI and here, a missing PostgreSQL is a failure, not a skipped test.
export CI_REQUIRE_SERVICES=1
python3 -m ruff check src tests benchmarks scripts
python3 -m ruff format --check src tests benchmarks scripts
python3 -m pytest -n 2 "$@"
