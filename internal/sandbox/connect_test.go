package sandbox_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aetherium/aetherium/internal/sandbox"
)

// listen serves a unix socket that writes name to whoever connects.
func listen(t *testing.T, path, name string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name))
			c.Close()
		}
	}()
}

// TestDialUnixRefusesWhatTheGuestPlanted guards against a guest that can
// write the agent's socket directory (Docker's bind mount) replacing
// agent.sock with a symlink to a host socket, such as dockerd's.
func TestDialUnixRefusesWhatTheGuestPlanted(t *testing.T) {
	t.Parallel()
	host := t.TempDir()
	listen(t, filepath.Join(host, "docker.sock"), "dockerd")
	// A directory deep enough that its socket path outgrows sun_path.
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Bound at a short path, then moved where bind(2) could not reach.
	listen(t, filepath.Join(host, "agent.sock"), "agent")
	if err := os.Rename(filepath.Join(host, "agent.sock"), filepath.Join(dir, "agent.sock")); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(host, "docker.sock"), filepath.Join(dir, "link.sock"))
	os.WriteFile(filepath.Join(dir, "file.sock"), nil, 0o644)
	tests := []struct {
		name, sock, want string // want "" means refused
	}{
		{"the agent's socket, long path", "agent.sock", "agent"},
		{"symlink to a host socket", "link.sock", ""},
		{"regular file", "file.sock", ""},
		{"missing", "none.sock", ""},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := sandbox.DialUnix(ctx, filepath.Join(dir, tt.sock))
		cancel()
		switch {
		case tt.want == "" && err == nil:
			b := make([]byte, 16)
			n, _ := conn.Read(b)
			conn.Close()
			t.Errorf("%s: dialed, and reached %q", tt.name, b[:n])
		case tt.want != "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "":
			b := make([]byte, 16)
			n, _ := conn.Read(b)
			conn.Close()
			if string(b[:n]) != tt.want {
				t.Errorf("%s: reached %q; want %q", tt.name, b[:n], tt.want)
			}
		}
	}
}
