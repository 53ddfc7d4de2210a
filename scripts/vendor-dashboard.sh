#!/usr/bin/env bash
# Refreshes the dashboard's vendored browser libraries (xterm.js and its fit
# addon) from the npm registry at the versions pinned in
# tools/dashboard-vendor/package-lock.json, into
# internal/dashboard/static/vendor, which is committed and embedded in
# aetherd. To upgrade: change the versions in tools/dashboard-vendor/package.json,
# run `npm install --package-lock-only` there, then this script, and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
src=tools/dashboard-vendor
dst=internal/dashboard/static/vendor
npm ci --prefix "$src" --no-audit --no-fund --loglevel=error >/dev/null
mod="$src/node_modules/@xterm"
mkdir -p "$dst"
cp "$mod/xterm/lib/xterm.mjs" "$mod/xterm/css/xterm.css" "$mod/addon-fit/lib/addon-fit.mjs" "$dst/"
cp "$mod/xterm/LICENSE" "$dst/LICENSE-xterm"
cp "$mod/addon-fit/LICENSE" "$dst/LICENSE-addon-fit"
{
	echo "Vendored by scripts/vendor-dashboard.sh from the npm registry; do not edit."
	for p in xterm addon-fit; do
		node -e 'const p=require(process.argv[1]); console.log(p.name + " " + p.version + " (" + p.license + ")")' "$PWD/$mod/$p/package.json"
	done
} >"$dst/VERSIONS"
rm -rf "$src/node_modules"
echo "vendor-dashboard: $(tr '\n' ';' <"$dst/VERSIONS")"
