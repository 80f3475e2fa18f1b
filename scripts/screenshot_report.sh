#!/usr/bin/env bash
# Render a convbench HTML report in headless Chromium and save a PNG screenshot, offline.
# Usage: scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
report=$1
out=$2
size=${3:-1400,4000}
if [ ! -f "$report" ]; then
    echo "$0: no such report: $report" >&2
    exit 2
fi
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "$0: chromium not found; install it with: apt-get install -y chromium" >&2
    exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
url="file://$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
rm -f "$out_abs"
# --disable-quic / background networking / component update / sync: the report has no external
# assets, so nothing may reach the network while it renders.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --screenshot="$out_abs" \
    --window-size="$size" "$url" >"$profile/chromium.log" 2>&1 || {
    echo "$0: chromium failed:" >&2
    tail -20 "$profile/chromium.log" >&2
    exit 1
}
if [ ! -s "$out_abs" ]; then
    echo "$0: chromium wrote no screenshot" >&2
    tail -20 "$profile/chromium.log" >&2
    exit 1
fi
echo "wrote $out_abs"
