// Package tools knows how to install developer tools into a sandbox: one
// recipe per tool (what it needs first, how to install a given version, how
// to verify it), built in or added by the operator's YAML file, or through
// mise (see mise.go). It turns a request ("nodejs@20, claude-code,
// npm:cowsay@1.6") into ordered install steps; the worker runs them through
// the agent.
package tools

import (
	_ "embed"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/aetherium/aetherium/internal/errdefs"
)

//go:embed recipes.yaml
var builtin []byte

//go:embed prelude.sh
var prelude string

// Recipe installs one tool.
type Recipe struct {
	Name        string `yaml:"-"`
	Description string `yaml:"description"`
	// Requires lists tools installed first.
	Requires []string `yaml:"requires"`
	// DefaultVersion is used when no version is requested; empty means latest.
	DefaultVersion string `yaml:"default_version"`
	// VersionPattern is the regexp a requested version must match.
	VersionPattern string `yaml:"version_pattern"`
	// AvailableVersions, when set, are the only versions the recipe can
	// install (a distribution's one Python); a pin none of them fits is
	// refused before anything is created. Empty means any version may exist.
	AvailableVersions []string `yaml:"available_versions"`
	// Install is a bash script (see recipes.yaml for its contract).
	Install string `yaml:"install"`
	// Verify is a command whose output must contain the installed version.
	Verify string `yaml:"verify"`
	// Timeout bounds install plus verify; 0 means 10 minutes.
	Timeout time.Duration `yaml:"timeout"`

	pattern *regexp.Regexp
}

// Registry holds the known recipes and how tools are provided. It is
// read-only after Load and safe for concurrent use.
type Registry struct {
	recipes map[string]*Recipe
	cfg     Config
	// miseEnv is the shell prologue of every mise step: its directories and
	// the operator's settings as MISE_* variables.
	miseEnv string
}

// Config says where tools come from.
type Config struct {
	// Recipes is a YAML file of extra or overriding recipes (format of
	// recipes.yaml); empty means only the built-in ones.
	Recipes string
	// Provider installs the tools named without a backend ("nodejs"):
	// "recipes" (the default) or "mise". Names with a backend ("npm:cowsay",
	// "go:golang.org/x/example/hello") and "mise:" prefixed ones always go
	// through mise.
	Provider string
	// Providers overrides Provider per tool name.
	Providers map[string]string
	// MiseVersion is the mise release installed in sandboxes; empty means
	// the mise recipe's default_version.
	MiseVersion string
	// MiseSettings are mise settings ("node.mirror_url", "go.download_mirror")
	// given to mise as MISE_* environment variables while it installs. They
	// override the defaults (npm.package_manager: npm).
	MiseSettings map[string]string
}

// Load returns the built-in recipes, overridden and extended by the YAML file
// cfg.Recipes, with cfg's providers. Errors name the setting at fault.
func Load(cfg Config) (*Registry, error) {
	r := &Registry{recipes: map[string]*Recipe{}, cfg: cfg}
	if err := r.add(builtin, "built-in recipes"); err != nil {
		return nil, err
	}
	if cfg.Recipes != "" {
		data, err := os.ReadFile(cfg.Recipes)
		if err != nil {
			return nil, fmt.Errorf("tool recipes: %w", err)
		}
		if err := r.add(data, cfg.Recipes); err != nil {
			return nil, err
		}
	}
	if err := r.configureMise(); err != nil {
		return nil, err
	}
	for _, rc := range r.recipes {
		for _, dep := range rc.Requires {
			if r.recipes[dep] == nil {
				return nil, fmt.Errorf("tool recipe %s requires unknown tool %q", rc.Name, dep)
			}
		}
	}
	return r, nil
}

func (r *Registry) add(data []byte, source string) error {
	var m map[string]*Recipe
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	for name, rc := range m {
		if rc.Install == "" || rc.Verify == "" {
			return fmt.Errorf("%s: tool %s: install and verify are required", source, name)
		}
		pat := rc.VersionPattern
		if pat == "" {
			pat = `^[0-9A-Za-z._+-]+$`
		}
		var err error
		if rc.pattern, err = regexp.Compile(pat); err != nil {
			return fmt.Errorf("%s: tool %s: version_pattern: %w", source, name, err)
		}
		if rc.Timeout == 0 {
			rc.Timeout = 10 * time.Minute
		}
		rc.Name = name
		r.recipes[name] = rc
	}
	return nil
}

// Names lists the known tools, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.recipes))
	for n := range r.recipes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Step is one tool to install at one requested version.
type Step struct {
	Recipe  *Recipe
	Version string
}

// Script is the bash program that installs the step.
func (s Step) Script() string {
	return prelude + "\nVERSION=" + shellQuote(s.Version) + "\n" + s.Recipe.Install
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Spec renders the step as name@version.
func (s Step) Spec() string {
	if s.Version == "" {
		return s.Recipe.Name
	}
	return s.Recipe.Name + "@" + s.Version
}

// Plan validates a request and orders it: every requested tool (from tools,
// and from the keys of versions) after the tools it requires. Entries of
// tools may carry a version as "name@version". Unknown tools, versions that
// do not match a recipe's pattern and pins a recipe cannot satisfy are
// ErrUnprocessable errors naming them; nothing is installed for an invalid
// request.
func (r *Registry) Plan(tools []string, versions map[string]string) ([]Step, error) {
	want := map[string]string{}
	for _, t := range tools {
		name, v := splitSpec(t)
		want[name] = v
	}
	for name, v := range versions {
		want[name] = v
	}
	recipes := map[string]*Recipe{}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		rc, err := r.recipe(name)
		if err != nil {
			return nil, err
		}
		recipes[name] = rc
		if want[name] == "" {
			want[name] = rc.DefaultVersion
		}
		if err := rc.accepts(want[name]); err != nil {
			return nil, err
		}
	}
	var steps []Step
	done := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		if done[name] {
			return
		}
		done[name] = true
		rc := recipes[name]
		if rc == nil {
			rc = r.recipes[name]
		}
		for _, dep := range rc.Requires {
			visit(dep)
		}
		v, ok := want[name]
		if !ok {
			v = rc.DefaultVersion
		}
		steps = append(steps, Step{Recipe: rc, Version: v})
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		visit(name)
	}
	return steps, nil
}

// recipe is the recipe that installs name: mise's for names with a backend
// or sent to mise by the providers, else the named recipe.
func (r *Registry) recipe(name string) (*Recipe, error) {
	if rest, ok := r.viaMise(name); ok {
		return r.miseRecipe(name, rest)
	}
	if rc := r.recipes[name]; rc != nil {
		return rc, nil
	}
	return nil, errdefs.Unprocessable("additional_tools: unknown tool %q (known: %s, or backend:name through mise such as npm:cowsay)",
		name, strings.Join(r.Names(), ", "))
}

// accepts refuses a version that does not match the recipe's pattern, or
// that none of its available versions satisfies.
func (rc *Recipe) accepts(v string) error {
	if v == "" {
		return nil
	}
	if !rc.pattern.MatchString(v) {
		return errdefs.Unprocessable("tool_versions: %q is not a valid version of %s (want %s)", v, rc.Name, rc.VersionPattern)
	}
	if len(rc.AvailableVersions) == 0 {
		return nil
	}
	for _, a := range rc.AvailableVersions {
		if a == v || strings.HasPrefix(a, v+".") || strings.HasPrefix(v, a+".") {
			return nil
		}
	}
	return errdefs.Unprocessable("tool_versions: %s@%s cannot be installed: %s provides only %s (tools.provider mise installs other versions from a mirror)",
		rc.Name, v, rc.Description, strings.Join(rc.AvailableVersions, ", "))
}

// splitSpec splits "name@version" at its last "@" that is not the start of
// the name after a backend ("npm:@scope/pkg@1.2" is npm:@scope/pkg, 1.2).
func splitSpec(spec string) (name, version string) {
	prefix, rest := "", spec
	if r, ok := strings.CutPrefix(spec, misePrefix); ok {
		prefix, rest = misePrefix, r
	}
	start := strings.Index(rest, ":") + 2
	if i := strings.LastIndex(rest, "@"); i >= start && i > 0 {
		return prefix + rest[:i], rest[i+1:]
	}
	return spec, ""
}

// Unbaked drops the steps whose tool is already installed (baked, tool ->
// exact version, as a template records it) at a version the step accepts:
// the same version, or one of its patch releases ("20" accepts "20.11.1").
// Creating from a template that baked every requested tool installs nothing.
func Unbaked(steps []Step, baked map[string]string) []Step {
	var out []Step
	for _, st := range steps {
		v, ok := baked[st.Recipe.Name]
		if ok && (st.Version == "" || v == st.Version || strings.HasPrefix(v, st.Version+".")) {
			continue
		}
		out = append(out, st)
	}
	return out
}
