package tools

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/internal/errdefs"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	r, err := Load(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		tools    []string
		versions map[string]string
		want     string // steps as name@version, space separated
		wantErr  string
	}{
		{name: "dependency first", tools: []string{"claude-code"}, want: "nodejs@22 claude-code"},
		{name: "pin via map", tools: []string{"nodejs"}, versions: map[string]string{"nodejs": "20.11"}, want: "nodejs@20.11"},
		{name: "pin inline", tools: []string{"go@1.23.0", "bun"}, want: "bun go@1.23.0"},
		{name: "versions imply tools", versions: map[string]string{"go": "1.22"}, want: "go@1.22"},
		{name: "shared dependency once", tools: []string{"claude-code", "nodejs@20"}, want: "nodejs@20 claude-code"},
		{name: "unknown tool", tools: []string{"cobol"}, wantErr: `unknown tool "cobol"`},
		{name: "malformed version", tools: []string{"nodejs@latest;rm -rf /"}, wantErr: "not a valid version of nodejs"},
		{name: "go version must be 1.x", versions: map[string]string{"go": "2.0"}, wantErr: "not a valid version of go"},
		{name: "debian python has one version", tools: []string{"python@3.12"}, wantErr: "python@3.12 cannot be installed: Python 3 from Debian (bookworm has 3.11) provides only 3.11"},
		{name: "debian rust has one version", versions: map[string]string{"rust": "1.80"}, wantErr: "provides only 1.63"},
		{name: "python pin that fits", tools: []string{"python@3.11"}, want: "python@3.11"},
		{name: "python major fits", tools: []string{"python@3"}, want: "python@3"},
		{name: "python patch of the available", tools: []string{"python@3.11.2"}, want: "python@3.11.2"},
		{name: "npm backend through mise after node", tools: []string{"npm:cowsay@1.6"}, want: "nodejs@22 mise@2026.9.15 npm:cowsay@1.6"},
		{name: "go backend through mise after go", tools: []string{"go:golang.org/x/example/hello@latest"}, want: "go mise@2026.9.15 go:golang.org/x/example/hello@latest"},
		{name: "scoped npm package", tools: []string{"npm:@scope/pkg@2.0.1"}, want: "nodejs@22 mise@2026.9.15 npm:@scope/pkg@2.0.1"},
		{name: "scoped npm package without version", tools: []string{"npm:@scope/pkg"}, want: "nodejs@22 mise@2026.9.15 npm:@scope/pkg"},
		{name: "mise prefix takes a recipe's tool to mise", tools: []string{"mise:python@3.12"}, want: "mise@2026.9.15 mise:python@3.12"},
		{name: "mise backend pinned via map", tools: []string{"npm:cowsay"}, versions: map[string]string{"npm:cowsay": "1.6.0"}, want: "nodejs@22 mise@2026.9.15 npm:cowsay@1.6.0"},
		{name: "mise version is checked", tools: []string{"npm:cowsay@1.6;reboot"}, wantErr: "not a valid version of npm:cowsay"},
		{name: "mise tool name is checked", tools: []string{"npm:cow say"}, wantErr: "not a tool mise can install"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			steps, err := r.Plan(tt.tools, tt.versions)
			if tt.wantErr != "" {
				if !errors.Is(err, errdefs.ErrUnprocessable) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Plan(%v, %v) error = %v, want unprocessable %q", tt.tools, tt.versions, err, tt.wantErr)
				}
				return
			}
			var got []string
			for _, s := range steps {
				got = append(got, s.Spec())
			}
			if strings.Join(got, " ") != tt.want || err != nil {
				t.Errorf("Plan(%v, %v) = %q, %v; want %q", tt.tools, tt.versions, strings.Join(got, " "), err, tt.want)
			}
		})
	}
}

// TestExtraRecipes checks the operator can add and override recipes without
// recompiling.
func TestExtraRecipes(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "tools.yaml")
	os.WriteFile(p, []byte("jq:\n  description: jq from Debian\n  install: apt_install jq; installed \"$(jq --version | cut -d- -f2)\"\n  verify: jq --version\ngit:\n  install: installed 2.39.5\n  verify: git --version\n"), 0o644)
	r, err := Load(Config{Recipes: p})
	if err != nil {
		t.Fatal(err)
	}
	steps, err := r.Plan([]string{"jq", "git"}, nil)
	if err != nil || len(steps) != 2 || !strings.Contains(steps[0].Script(), "installed 2.39.5") {
		t.Errorf("Plan with extra recipes = %v, %v", steps, err)
	}
	os.WriteFile(p, []byte("broken:\n  install: x\n  verify: y\n  requires: [nothing]\n"), 0o644)
	if _, err := Load(Config{Recipes: p}); err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Errorf("recipe with unknown dependency loaded: %v", err)
	}
}

// TestMiseProvider: the operator's provider settings choose between a
// tool's recipe and mise, and mise's settings reach its install script.
func TestMiseProvider(t *testing.T) {
	t.Parallel()
	r, err := Load(Config{Provider: ProviderMise, Providers: map[string]string{"nodejs": ProviderRecipes},
		MiseVersion: "2026.8.1", MiseSettings: map[string]string{"node.mirror_url": "https://mirror.example/node/"}})
	if err != nil {
		t.Fatal(err)
	}
	steps, err := r.Plan([]string{"python@3.12", "nodejs@20"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Spec())
	}
	if want := "nodejs@20 mise@2026.8.1 python@3.12"; strings.Join(got, " ") != want {
		t.Fatalf("Plan = %q, want %q", strings.Join(got, " "), want)
	}
	py := steps[2].Script()
	for _, want := range []string{"TOOL='python'", "export MISE_NODE_MIRROR_URL='https://mirror.example/node/'",
		"export MISE_NPM_PACKAGE_MANAGER='npm'", `mise use --global "$TOOL@${VERSION:-latest}"`} {
		if !strings.Contains(py, want) {
			t.Errorf("python's install script lacks %q:\n%s", want, py)
		}
	}
	if s := steps[0].Script(); strings.Contains(s, "mise use") {
		t.Errorf("nodejs, kept on its recipe, installs through mise:\n%s", s)
	}
	for _, bad := range []Config{{Provider: "apt"}, {Providers: map[string]string{"go": "brew"}}, {MiseVersion: "latest"},
		{MiseSettings: map[string]string{"node.mirror_url; reboot": "x"}}} {
		if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "tools.") {
			t.Errorf("Load(%+v) = %v, want an error naming the setting", bad, err)
		}
	}
}

func TestScriptQuotesVersion(t *testing.T) {
	t.Parallel()
	s := Step{Recipe: &Recipe{Install: "true"}, Version: "1'; rm -rf /; '"}.Script()
	if !strings.Contains(s, `VERSION='1'\''; rm -rf /; '\'''`) {
		t.Errorf("version not quoted: %s", s)
	}
}

func TestUnbaked(t *testing.T) {
	t.Parallel()
	r, err := Load(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		tools []string
		baked map[string]string
		want  string // remaining steps as name@version
	}{
		{name: "nothing baked", tools: []string{"go@1.23"}, want: "go@1.23"},
		{name: "patch release of the asked version", tools: []string{"go@1.23"}, baked: map[string]string{"go": "1.23.4"}},
		{name: "exact version", tools: []string{"go@1.23.4"}, baked: map[string]string{"go": "1.23.4"}},
		{name: "other version", tools: []string{"go@1.22"}, baked: map[string]string{"go": "1.23.4"}, want: "go@1.22"},
		{name: "prefix is not a release", tools: []string{"go@1.2"}, baked: map[string]string{"go": "1.23.4"}, want: "go@1.2"},
		{name: "only the missing dependency", tools: []string{"claude-code"}, baked: map[string]string{"claude-code": "1.0.0"}, want: "nodejs@22"},
		{name: "mise tools baked", tools: []string{"npm:cowsay@1.6"}, baked: map[string]string{"mise": "2026.9.15", "nodejs": "22.1.0", "npm:cowsay": "1.6.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			steps, err := r.Plan(tt.tools, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range Unbaked(steps, tt.baked) {
				got = append(got, s.Spec())
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("Unbaked(%v, %v) = %q, want %q", tt.tools, tt.baked, strings.Join(got, " "), tt.want)
			}
		})
	}
}
