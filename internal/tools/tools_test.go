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
	r, err := Load("")
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
	r, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := r.Plan([]string{"jq", "git"}, nil)
	if err != nil || len(steps) != 2 || !strings.Contains(steps[0].Script(), "installed 2.39.5") {
		t.Errorf("Plan with extra recipes = %v, %v", steps, err)
	}
	os.WriteFile(p, []byte("broken:\n  install: x\n  verify: y\n  requires: [nothing]\n"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Errorf("recipe with unknown dependency loaded: %v", err)
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
	r, err := Load("")
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
