package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"

	"github.com/aetherium/aetherium/client"
)

// echoLatency types one byte at a time into a terminal running cat and
// times until the terminal's echo of it arrives.
func echoLatency(b *testing.B, w io.Writer, r io.Reader, n int) samples {
	b.Helper()
	var out samples
	buf := make([]byte, 1)
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := w.Write([]byte{'a'}); err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := io.ReadFull(r, buf); err != nil {
				b.Fatal(err)
			}
			if buf[0] == 'a' {
				break
			}
		}
		out = append(out, time.Since(start))
	}
	return out
}

// BenchmarkPtyEcho measures keystroke echo latency through the PTY
// WebSocket (client → aetherd → agent → the sandbox's pty, and back) next
// to `docker exec -it CONTAINER cat` driven from a local pty (the docker
// CLI → dockerd → the container's tty), on the same container.
func BenchmarkPtyEcho(b *testing.B) {
	e := newDockerEnv(b)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "echo"})
	rt, err := e.c.Pty(b.Context(), vm.Name, &client.PtyOptions{Argv: []string{"cat"}})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	// The local terminal is raw from the start: only the container's tty
	// echoes (a local echo before the docker CLI goes raw would double it).
	tty, slave, err := pty.Open()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := term.MakeRaw(int(slave.Fd())); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("docker", "exec", "-it", "aether-"+vm.ID, "cat")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	slave.Close()
	defer func() { tty.Close(); cmd.Process.Kill(); cmd.Wait() }()
	echoLatency(b, tty, tty, 5) // the docker CLI's first keystrokes include its setup
	echoLatency(b, rt, rt, 5)
	b.ResetTimer()
	ours := echoLatency(b, rt, rt, b.N)
	raw := echoLatency(b, tty, tty, b.N)
	report(b, "pty keystroke echo (raw = docker exec -it)", ours, raw)
}

// BenchmarkPortProxy measures one small HTTP request through
// /api/v1/vms/{id}/ports/{port}/ against the same request sent directly to
// the sandbox's ip_address, in the same iterations, then the throughput of
// a 64 MiB download both ways.
func BenchmarkPortProxy(b *testing.B) {
	e := newDockerEnv(b)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "web"})
	if vm.IPAddress == "" {
		b.Skip("the sandbox has no ip_address to compare with")
	}
	e.startHTTPD("web", "0.0.0.0", "8000")
	proxied := "http://" + e.addr + "/api/v1/vms/web/ports/8000"
	direct := "http://" + vm.IPAddress + ":8000"
	hc := e.http()
	get := func(url string) int64 {
		resp, err := hc.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
		}
		return n
	}
	b.ResetTimer()
	var ours, raw samples
	for i := 0; i < b.N; i++ {
		start := time.Now()
		get(proxied + "/small")
		ours = append(ours, time.Since(start))
		start = time.Now()
		get(direct + "/small")
		raw = append(raw, time.Since(start))
	}
	report(b, "HTTP request via /ports/ (raw = direct to ip_address)", ours, raw)
	const size = 64 << 20
	mbps := func(url string) float64 {
		start := time.Now()
		if n := get(fmt.Sprintf("%s/bytes/%d", url, size)); n != size {
			b.Fatalf("got %d bytes", n)
		}
		return float64(size) / (1 << 20) / time.Since(start).Seconds()
	}
	var best, bestRaw float64
	for range 3 {
		best, bestRaw = max(best, mbps(proxied)), max(bestRaw, mbps(direct))
	}
	b.ReportMetric(best, "proxy-MiB/s")
	b.ReportMetric(bestRaw, "direct-MiB/s")
	b.Logf("64 MiB download, best of 3: via /ports/ %.0f MiB/s | direct %.0f MiB/s", best, bestRaw)
}
