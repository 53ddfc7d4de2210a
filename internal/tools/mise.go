package tools

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/aetherium/aetherium/internal/errdefs"
)

// mise (https://mise.jdx.dev) installs tools the recipes do not know, or
// other versions of those they do, inside the sandbox. Its binary comes from
// the npm registry through the "mise" recipe, like Node.js and Bun, so it
// reaches every runtime (Docker, QEMU, Firecracker) the same way and is baked
// into templates with the rest. A mise tool's step requires that recipe, plus
// what its backend runs: npm: needs Node.js (npm install), go: needs Go (go
// install). Installed tools are linked into /usr/local/bin, so they are on
// PATH without mise's shims or shell activation.

// misePrefix sends a tool that has a recipe to mise instead: "mise:python@3.12".
const misePrefix = "mise:"

// Provider names for Config.Provider and Config.Providers.
const (
	ProviderRecipes = "recipes"
	ProviderMise    = "mise"
)

var (
	// miseToolRE is what mise may be asked for: an optional backend and a
	// tool, package or module name (npm scopes, module paths).
	miseToolRE = regexp.MustCompile(`^([a-z][a-z0-9-]*:)?[A-Za-z0-9@][A-Za-z0-9@._/+-]{0,199}$`)
	// miseVersionRE accepts mise's version forms: "20", "1.6.0", "latest",
	// "v1.2.3", "0.0.0-20250915201037-7f05d217867b".
	miseVersionRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$`)
	miseSettingRE   = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
	miseBackendDeps = map[string][]string{"npm": {"nodejs"}, "go": {"go"}}
)

// miseDefaults are mise settings that differ from mise's own defaults: its
// npm backend installs with npm (the default package manager refuses
// packages whose registry metadata lacks publish times).
var miseDefaults = map[string]string{"npm.package_manager": "npm"}

// miseDirs keep everything mise writes in system-wide places, so a template
// image carries it and every user of the sandbox sees the same tools.
const miseDirs = `export MISE_DATA_DIR=/usr/local/share/mise MISE_CONFIG_DIR=/etc/mise MISE_CACHE_DIR=/var/cache/mise
export MISE_STATE_DIR=/var/lib/mise MISE_YES=1 NO_COLOR=1
`

// miseInstall installs $TOOL at $VERSION (empty: latest) with mise, links
// its executables into /usr/local/bin and reports the exact version.
const miseInstall = `mise use --global "$TOOL@${VERSION:-latest}" >&2 || die "mise could not install $TOOL@${VERSION:-latest}"
V=$(mise current "$TOOL") && [ -n "$V" ] || die "mise installed $TOOL but reports no version"
for d in $(mise bin-paths "$TOOL"); do
	for f in "$d"/*; do [ -f "$f" ] && [ -x "$f" ] && ln -sf "$f" /usr/local/bin/; done
done
case $VERSION in latest) VERSION= ;; v*) VERSION=${VERSION#v} ;; esac
installed "$V"
`

// configureMise checks the providers and mise settings and sets the mise
// recipe's version.
func (r *Registry) configureMise() error {
	check := func(field, p string) error {
		if p != ProviderRecipes && p != ProviderMise {
			return fmt.Errorf("tools.%s: %q is not a provider (want %s or %s)", field, p, ProviderRecipes, ProviderMise)
		}
		return nil
	}
	if r.cfg.Provider == "" {
		r.cfg.Provider = ProviderRecipes
	}
	if err := check("provider", r.cfg.Provider); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(r.cfg.Providers)) {
		if err := check("providers."+name, r.cfg.Providers[name]); err != nil {
			return err
		}
	}
	rc := r.recipes["mise"]
	if rc == nil {
		return fmt.Errorf("tools: the mise recipe is missing")
	}
	if v := r.cfg.MiseVersion; v != "" {
		if !rc.pattern.MatchString(v) {
			return fmt.Errorf("tools.mise.version: %q is not a mise release (want %s)", v, rc.VersionPattern)
		}
		rc.DefaultVersion = v
	}
	settings := maps.Clone(miseDefaults)
	maps.Copy(settings, r.cfg.MiseSettings)
	var env strings.Builder
	env.WriteString(miseDirs)
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		if !miseSettingRE.MatchString(k) {
			return fmt.Errorf("tools.mise.settings: %q is not a mise setting name (like node.mirror_url)", k)
		}
		fmt.Fprintf(&env, "export MISE_%s=%s\n", strings.ToUpper(strings.ReplaceAll(k, ".", "_")), shellQuote(settings[k]))
	}
	r.miseEnv = env.String()
	return nil
}

// viaMise reports whether name is installed by mise, and what mise calls it.
func (r *Registry) viaMise(name string) (string, bool) {
	if rest, ok := strings.CutPrefix(name, misePrefix); ok {
		return rest, true
	}
	if strings.Contains(name, ":") {
		return name, true
	}
	p, ok := r.cfg.Providers[name]
	if !ok {
		p = r.cfg.Provider
	}
	return name, p == ProviderMise
}

// miseRecipe is the recipe of one tool installed by mise, which knows it as
// tool. Unknown tools and versions are mise's to refuse, when it runs.
func (r *Registry) miseRecipe(name, tool string) (*Recipe, error) {
	if !miseToolRE.MatchString(tool) {
		return nil, errdefs.Unprocessable("additional_tools: %q is not a tool mise can install (want [backend:]name, such as npm:cowsay or go:golang.org/x/example/hello)", name)
	}
	requires := []string{"mise"}
	if backend, _, ok := strings.Cut(tool, ":"); ok {
		requires = append(miseBackendDeps[backend], requires...)
	}
	return &Recipe{
		Name:           name,
		Description:    tool + " through mise",
		Requires:       requires,
		VersionPattern: miseVersionRE.String(),
		Install:        r.miseEnv + "TOOL=" + shellQuote(tool) + "\n" + miseInstall,
		Verify:         r.miseEnv + "mise current " + shellQuote(tool),
		Timeout:        r.recipes["mise"].Timeout,
		pattern:        miseVersionRE,
	}, nil
}
