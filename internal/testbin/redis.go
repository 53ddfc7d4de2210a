package testbin

import (
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"
)

// Redis is a real redis-server process owned by one test, with append-only
// persistence in a temporary directory so Restart keeps its data.
type Redis struct {
	Addr string
	t    testing.TB
	dir  string
	cmd  *exec.Cmd
}

// StartRedis starts redis-server on a free loopback port; it is stopped when
// the test ends. Skips (or fails under AETHER_REQUIRE_SERVICES=1) without it.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	Need(t, "redis-server", err)
	r := &Redis{Addr: freePort(t), t: t, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.Stop)
	return r
}

func (r *Redis) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	r.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction", "--protected-mode", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if r.ping() == nil {
			return
		}
	}
	r.t.Fatalf("redis-server on %s did not start", r.Addr)
}

func (r *Redis) ping() error {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprint(c, "PING\r\n")
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("redis not ready: %q %v", buf[:n], err)
	}
	return nil
}

// Stop stops the server. It is idempotent.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.ProcessState == nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

// Restart stops and starts the server on the same port and data directory.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	r.start()
}

// Flush deletes every key, as a lost or replaced Redis would.
func (r *Redis) Flush() {
	r.t.Helper()
	out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", portOf(r.Addr), "FLUSHALL").CombinedOutput()
	if err != nil {
		r.t.Fatalf("FLUSHALL: %v %s", err, out)
	}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
