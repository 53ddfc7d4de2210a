package firecracker

import (
	"bufio"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hybridServer speaks Firecracker's host side of hybrid vsock on a real unix
// socket: it refuses (closes) the first refuse connections, as Firecracker
// does while the guest is not listening, then answers OK and echoes.
func hybridServer(t *testing.T, refuse int32, answer string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "v.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(io.LimitReader(c, 32)).ReadString('\n')
				if err != nil || line != "CONNECT 1024\n" {
					return
				}
				if n.Add(1) <= refuse {
					return // guest not listening yet
				}
				io.WriteString(c, answer)
				io.Copy(c, c) // the guest side: echo
			}()
		}
	}()
	return sock
}

func TestDialHybridVsock(t *testing.T) {
	t.Parallel()
	sock := hybridServer(t, 3, "OK 1073741824\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := DialHybridVsock(ctx, sock, AgentPort)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Data right after the handshake reaches the guest and comes back intact:
	// the dialer consumed the OK line and nothing more.
	io.WriteString(conn, "hello agent\n")
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || got != "hello agent\n" {
		t.Errorf("after handshake: %q, %v", got, err)
	}
}

func TestDialHybridVsockErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, answer string
		refuse       int32
		want         string
	}{
		{"guest never listens", "OK 1\n", 1 << 30, "deadline"},
		{"bad answer", "NOPE\n", 0, "unexpected answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sock := hybridServer(t, tt.refuse, tt.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_, err := DialHybridVsock(ctx, sock, AgentPort)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
