package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
)

// TestGoSDK runs the Go SDK's E2B-style session against a real aetherd on
// Docker: create, run with output and stdin, files both ways, typed errors,
// close; then the SDK's runnable example (sdk/go/example) end to end.
func TestGoSDK(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	ctx := t.Context()
	sb, err := e.c.CreateSandbox(ctx, &client.CreateVMRequest{Name: "gosdk"})
	if err != nil || sb.VM.Status != "running" {
		t.Fatalf("CreateSandbox = %+v, %v", sb, err)
	}
	res, err := sb.Run(ctx, "echo out; echo err >&2; exit 3")
	if err != nil || res.Code() != 3 || string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	res, err = sb.RunRequest(ctx, &apiv1.ExecRequest{Command: "tr", Args: []string{"a-z", "A-Z"}}, strings.NewReader("shout"))
	if err != nil || string(res.Stdout) != "SHOUT" {
		t.Fatalf("RunRequest with stdin = %+v, %v", res, err)
	}
	if err := sb.WriteFile(ctx, "/tmp/sdk/f.bin", []byte("\x00binary\xff"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := sb.ReadFile(ctx, "/tmp/sdk/f.bin", 1<<20); err != nil || string(b) != "\x00binary\xff" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if _, err := sb.ReadFile(ctx, "/tmp/sdk/f.bin", 3); err == nil {
		t.Error("ReadFile past its max: no error")
	}
	if _, err := e.c.Sandbox(ctx, "no-such-sandbox"); !client.IsNotFound(err) {
		t.Errorf("Sandbox(missing) = %v, want a not-found *client.Error", err)
	}
	if _, err := e.c.WithKey("aek_wrong").Sandbox(ctx, "gosdk"); !client.IsUnauthenticated(err) {
		t.Errorf("a wrong key: %v, want unauthenticated", err)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	e.waitVM(sb.VM.ID, "deleted", 30*time.Second)

	cmd := exec.Command("go", "run", "./sdk/go/example")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "AETHER_URL=http://"+e.addr, "AETHER_API_KEY="+e.key())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "exit 0: hello from the Go SDK") {
		t.Fatalf("the SDK example: %v\n%s", err, out)
	}
}
