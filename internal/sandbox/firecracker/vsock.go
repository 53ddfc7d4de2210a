package firecracker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/sandbox"
)

// AgentPort is the vsock port aether-agent listens on inside the guest.
const AgentPort = 1024

// DialHybridVsock connects to a guest vsock port through Firecracker's
// hybrid-vsock unix socket: it sends "CONNECT <port>\n" and waits for
// "OK <host port>\n". Until the guest listens, Firecracker closes the
// connection; DialHybridVsock retries until ctx ends. An answer that is not
// "OK <n>" is a protocol mismatch and fails at once. The returned conn
// carries only guest data (the handshake line is consumed exactly, never
// more).
func DialHybridVsock(ctx context.Context, udsPath string, port uint32) (net.Conn, error) {
	delay := time.Millisecond
	for {
		conn, err := hybridOnce(ctx, udsPath, port)
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, errBadAnswer) {
			return nil, fmt.Errorf("vsock port %d via %s: %w", port, udsPath, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vsock port %d via %s: %w (last error: %v)", port, udsPath, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 20*time.Millisecond)
	}
}

// errBadAnswer is a handshake answer that is not "OK <n>".
var errBadAnswer = errors.New("unexpected answer")

func hybridOnce(ctx context.Context, udsPath string, port uint32) (net.Conn, error) {
	conn, err := sandbox.DialUnix(ctx, udsPath)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	if _, err := fmt.Fprintf(conn, "CONNECT %d\n", port); err != nil {
		conn.Close()
		return nil, err
	}
	line, err := readLine(conn, 64)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if rest, ok := strings.CutPrefix(line, "OK "); !ok || !isNumber(rest) {
		conn.Close()
		return nil, fmt.Errorf("handshake: %w %q", errBadAnswer, line)
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// readLine reads up to '\n' one byte at a time, so no guest data is consumed.
func readLine(conn net.Conn, max int) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() < max {
		if _, err := conn.Read(buf); err != nil {
			return "", err
		}
		if buf[0] == '\n' {
			return b.String(), nil
		}
		b.WriteByte(buf[0])
	}
	return "", errors.New("answer line too long")
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}
