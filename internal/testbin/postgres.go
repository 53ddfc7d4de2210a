package testbin

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL server owned by one test (initdb in a
// temporary directory, run as the postgres user), for tests that restart it.
type Postgres struct {
	URL  string
	t    testing.TB
	bin  string
	dir  string
	port string
}

// StartPostgres initialises and starts a private server; it is stopped when
// the test ends.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if len(dirs) == 0 {
		Need(t, "postgresql server binaries", fmt.Errorf("none under /usr/lib/postgresql"))
	}
	sort.Strings(dirs)
	p := &Postgres{t: t, bin: dirs[len(dirs)-1], port: portOf(freePort(t))}
	p.dir = filepath.Join(os.TempDir(), fmt.Sprintf("aether-pg-%d", time.Now().UnixNano()))
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.ctl("stop", "-m", "immediate"); os.RemoveAll(p.dir) })
	if out, err := exec.Command("chown", "postgres:postgres", p.dir).CombinedOutput(); err != nil {
		Need(t, "a postgres system user", fmt.Errorf("%v: %s", err, out))
	}
	if out, err := p.asPostgres(filepath.Join(p.bin, "initdb"), "-D", p.dir+"/data", "-A", "trust", "-U", "aether").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.URL = fmt.Sprintf("postgres://aether@127.0.0.1:%s/postgres?sslmode=disable", p.port)
	p.Start()
	return p
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (p *Postgres) asPostgres(name string, args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
}

func (p *Postgres) ctl(args ...string) ([]byte, error) {
	all := append([]string{"-D", p.dir + "/data", "-w", "-t", "30"}, args...)
	return p.asPostgres(filepath.Join(p.bin, "pg_ctl"), all...).CombinedOutput()
}

// Start starts the server and waits until it accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off", p.port, p.dir)
	if out, err := p.ctl("start", "-l", p.dir+"/log", "-o", opts); err != nil {
		log, _ := os.ReadFile(p.dir + "/log")
		p.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if c, err := pgx.Connect(ctx, p.URL); err == nil {
			c.Close(ctx)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatal("private postgres did not accept connections")
}

// Stop stops the server immediately (connections are cut, as in a crash).
func (p *Postgres) Stop() {
	p.t.Helper()
	if out, err := p.ctl("stop", "-m", "immediate"); err != nil {
		p.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}
