set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
die() { echo "error: $*" >&2; exit 1; }
# installed prints the marker the installer reads; $VERSION, when set, must
# be a prefix of what was installed.
installed() {
	case "$1" in "$VERSION"|"$VERSION".*|"$VERSION"-*|"$VERSION"+*) ;; *) [ -z "$VERSION" ] || die "version $1 installed, but $VERSION was requested" ;; esac
	echo "AETHER_INSTALLED=$1"
}
fetch() { curl -fsSL --retry 3 -o "$2" "$1" || die "download failed: $1"; }
# apt_install installs Debian packages, updating the package lists once.
apt_install() {
	ls /var/lib/apt/lists/*_InRelease >/dev/null 2>&1 || apt-get update -qq >&2 || die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}
# npm_resolve prints the newest release of npm package $1 whose version
# starts with $2 (all when empty). It reads each version object's own
# "version" field (dependency pins are not "version" keys), from compact or
# indented JSON; pre-releases (x.y.z-tag) never match.
npm_resolve() {
	local filter=. v
	[ -z "$2" ] || filter="^$(printf '%s' "$2" | sed 's/\./\\./g')(\.|$)"
	v=$(curl -fsSL -H 'Accept: application/vnd.npm.install-v1+json' "https://registry.npmjs.org/${1/\//%2f}" \
		| grep -oE '"version"[[:space:]]*:[[:space:]]*"[0-9]+\.[0-9]+\.[0-9]+"' | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' \
		| grep -E "$filter" | sort -V | tail -1) || true
	[ -n "$v" ] || die "no version of $1 matches '${2:-latest}' on the npm registry"
	echo "$v"
}
