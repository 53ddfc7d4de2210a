package task

import (
	"errors"
	"testing"

	"github.com/aetherium/aetherium/internal/errdefs"
)

// TestArtifactArgsValidate: what a client sends for a pull request is
// checked before it is queued; branch names follow git check-ref-format on
// a narrow alphabet and can never be read as an option.
func TestArtifactArgsValidate(t *testing.T) {
	t.Parallel()
	good := IntegrationArtifactArgs{Integration: "github", Repo: "acme/widgets", Path: "/work/repo", Branch: "agent/fix-1.2",
		Base: "main", Title: "Fix"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(%+v) = %v; want nil", good, err)
	}
	bad := map[string]func(a *IntegrationArtifactArgs){
		"repo without owner": func(a *IntegrationArtifactArgs) { a.Repo = "widgets" },
		"repo with ..":       func(a *IntegrationArtifactArgs) { a.Repo = "../x" },
		"relative path":      func(a *IntegrationArtifactArgs) { a.Path = "work/repo" },
		"unclean path":       func(a *IntegrationArtifactArgs) { a.Path = "/work/../etc" },
		"no title":           func(a *IntegrationArtifactArgs) { a.Title = "" },
		"option branch":      func(a *IntegrationArtifactArgs) { a.Branch = "-delete" },
		"branch with ..":     func(a *IntegrationArtifactArgs) { a.Branch = "a..b" },
		"branch with space":  func(a *IntegrationArtifactArgs) { a.Branch = "a b" },
		"branch with colon":  func(a *IntegrationArtifactArgs) { a.Branch = "a:refs/heads/main" },
		"branch .lock":       func(a *IntegrationArtifactArgs) { a.Branch = "x/y.lock" },
		"branch hidden":      func(a *IntegrationArtifactArgs) { a.Branch = "x/.y" },
		"branch //":          func(a *IntegrationArtifactArgs) { a.Branch = "x//y" },
		"branch trailing /":  func(a *IntegrationArtifactArgs) { a.Branch = "x/" },
		"branch @{":          func(a *IntegrationArtifactArgs) { a.Branch = "x@{1}" },
		"empty base":         func(a *IntegrationArtifactArgs) { a.Base = "" },
	}
	for name, mutate := range bad {
		a := good
		mutate(&a)
		if err := a.Validate(); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Validate(%+v) = %v; want ErrInvalidArgument", name, a, err)
		}
	}
}
