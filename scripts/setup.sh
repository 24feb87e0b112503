#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install placewatch with its test tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

pick_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
      echo "$candidate"; return 0
    fi
  done
  echo "placewatch needs Python >= 3.11 (none found on PATH)" >&2
  return 1
}

# Debian packages: promtool and amtool (tests of alerts/), Prometheus and Alertmanager
# (end-to-end tests); Pango, HarfBuzz's subsetter and the DejaVu fonts (the weekly report's
# PDF, WeasyPrint); poppler-utils (pdftotext and pdftoppm, which the report's tests read it with).
DEBS="prometheus prometheus-alertmanager libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
      fonts-dejavu-core poppler-utils"
missing=""
for deb in $DEBS; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing="$missing $deb"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends $missing >/dev/null
  else
    echo "warning: install the Debian packages$missing (alerting tests, the report's PDF)" >&2
  fi
fi

PY=$(pick_python)
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian ships venv separately; install it when we may.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf .venv && "$PY" -m venv .venv
    else
      echo "cannot create a virtual environment: install python3-venv" >&2
      exit 1
    fi
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install --quiet -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import detectors, streams, simulator, faust, aiokafka, river, grafana_client"
