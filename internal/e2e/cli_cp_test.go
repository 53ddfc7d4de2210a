package e2e_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLICopyAndHints drives `aether cp` both ways with a 3 MiB file (the
// progress line's counting reader in the path; stderr is no terminal here,
// so nothing but the data is printed) and checks that real API errors end
// the CLI with one line saying what to do next.
func TestCLICopyAndHints(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	if out, code := e.aether("", "vm", "create", "cp", "--wait"); code != 0 {
		t.Fatalf("vm create: exit %d\n%s", code, out)
	}
	dir := t.TempDir()
	data := make([]byte, 3<<20)
	rand.Read(data)
	src := filepath.Join(dir, "blob")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := e.aether("", "cp", src, "cp:/root/blob"); code != 0 || out != "" {
		t.Fatalf("cp up: exit %d, printed %q", code, out)
	}
	back := filepath.Join(dir, "back")
	if err := os.Mkdir(back, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, code := e.aether("", "cp", "cp:/root/blob", back); code != 0 || out != "" {
		t.Fatalf("cp down: exit %d, printed %q", code, out)
	}
	if got, err := os.ReadFile(filepath.Join(back, "blob")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (%v), want the %d uploaded", len(got), err, len(data))
	}
	if out, code := e.aether("", "cp", "cp:/root/blob", "-"); code != 0 || out != string(data) {
		t.Fatalf("cp to stdout: exit %d, %d bytes printed; want exactly the file's %d", code, len(out), len(data))
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"vm", "get", "nope"}, "aether: sandbox nope not found — aether vm ls lists yours\n"},
		{[]string{"vm", "resume", "cp"}, "aether: sandbox cp is running, not paused — it is already running\n"},
		{[]string{"--server", "http://127.0.0.1:1", "vm", "ls"}, "— is aetherd running? start it with aetherd (./bin/aetherd &), or point AETHER_SERVER (--server) at it\n"},
	} {
		out, code := e.aether("", tc.args...)
		if code != 1 || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, tc.want) {
			t.Errorf("aether %s: exit %d, %q; want exit 1 and one line ending %q", strings.Join(tc.args, " "), code, out, tc.want)
		}
	}
}
