package client_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestUsableFromAnotherModule builds the SDK's example (sdk/go/example) as
// a program of another module that requires this one: everything a caller
// needs is public (no internal/ package has to be named). The module cache
// serves the dependencies (GOPROXY=off).
func TestUsableFromAnotherModule(t *testing.T) {
	t.Parallel()
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(here))
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(root, "sdk", "go", "example", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	mod := "module example.com/sdkuser\n\ngo 1.26\n\nrequire github.com/aetherium/aetherium v0.0.0\n\n" +
		"replace github.com/aetherium/aetherium => " + root + "\n"
	for name, body := range map[string][]byte{"go.mod": []byte(mod), "go.sum": sum, "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the example in another module: %v\n%s", err, out)
	}
}
