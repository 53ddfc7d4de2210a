package e2e_test

import (
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/aetherium/aetherium/apiv1"
	"github.com/aetherium/aetherium/client"
)

// screen collects what a terminal printed, for waitFor.
type screen struct {
	mu   sync.Mutex
	b    strings.Builder
	done chan struct{}
	news chan struct{}
}

func watch(r io.Reader) *screen {
	s := &screen{done: make(chan struct{}), news: make(chan struct{}, 1)}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			s.mu.Lock()
			s.b.Write(buf[:n])
			s.mu.Unlock()
			select {
			case s.news <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the screen shows want; the output ending first, or
// 30 s without it, fails the test.
func (s *screen) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for !strings.Contains(s.String(), want) {
		select {
		case <-s.news:
		case <-s.done:
			if !strings.Contains(s.String(), want) {
				t.Fatalf("output ended without %q: %q", want, s.String())
			}
		case <-timeout:
			t.Fatalf("no %q on the terminal within 30s: %q", want, s.String())
		}
	}
}

func (s *screen) waitEnd(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the terminal did not end within 30s: %q", s.String())
	}
}

// TestPtyAPI drives GET /api/v1/vms/{id}/pty with the Go client against a
// real Docker sandbox: the login shell runs on a terminal of the asked size,
// a resize message reaches `stty size`, Ctrl-C typed in interrupts a
// foreground command, a signal message reaches one, and the exit code comes
// back. Bad requests are 4xx before the upgrade, and another project's key
// gets 404.
func TestPtyAPI(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	vm := e.MustCreateVM(&client.CreateVMRequest{Name: "term"})
	term, err := e.c.Pty(ctx(t), vm.Name, &client.PtyOptions{Cols: 100, Rows: 30, Env: []string{"PS1=$ "}, Argv: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	out := watch(term)
	steps := []struct {
		typed, want string
		do          func() error
	}{
		{typed: "tty; stty size\n", want: "30 100"},
		{do: func() error { return term.Resize(132, 43) }},
		{typed: "stty size\n", want: "43 132"},
		// The inner sh dies of the signal before or after its exec: 128+n
		// either way. Ctrl-C typed ahead would be flushed with the line, and
		// an interactive shell abandons the rest of an interrupted line.
		{typed: "sh -c 'echo st\"\"arted; exec sleep 100'\n", want: "started"},
		{typed: "\x03", want: "^C"},
		{typed: "echo after=$?\n", want: "after=130"},
		{typed: "sh -c 'echo re\"\"ady; exec sleep 100'; echo signalled=$?\n", want: "ready"},
		{do: func() error { return term.Signal("SIGTERM") }, want: "signalled=143"},
		{typed: "exit 3\n"},
	}
	for _, s := range steps {
		if s.typed != "" {
			if _, err := io.WriteString(term, s.typed); err != nil {
				t.Fatal(err)
			}
		}
		if s.do != nil {
			if err := s.do(); err != nil {
				t.Fatal(err)
			}
		}
		if s.want != "" {
			out.waitFor(t, s.want)
		}
	}
	out.waitEnd(t)
	if exit, err := term.Wait(); err != nil || *exit.ExitCode != 3 {
		t.Fatalf("exit = %+v, %v; want exit_code 3", exit, err)
	}
	if !strings.Contains(out.String(), "/dev/pts/") {
		t.Errorf("tty printed no /dev/pts/N: %q", out.String())
	}

	// The default is a login shell with TERM set.
	login, err := e.c.Pty(ctx(t), vm.Name, &client.PtyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lout := watch(login)
	io.WriteString(login, "echo term=$TERM; exit\n")
	lout.waitEnd(t)
	if exit, err := login.Wait(); err != nil || *exit.ExitCode != 0 || !strings.Contains(lout.String(), "term=xterm-256color") {
		t.Errorf("login shell: %q, exit %+v, %v", lout.String(), exit, err)
	}

	for name, o := range map[string]*client.PtyOptions{
		"command not found": {Argv: []string{"no-such-program"}},
		"bad size":          {Command: "true", Cols: 5000, Rows: 1},
		"relative cwd":      {Command: "true", Cwd: "tmp"},
		"bad env":           {Command: "true", Env: []string{"=x"}},
	} {
		var ae *client.Error
		if _, err := e.c.Pty(ctx(t), vm.Name, o); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("%s: %v; want 400", name, err)
		}
	}
	resp, err := e.http().Get("http://" + e.addr + "/api/v1/vms/" + vm.ID + "/pty")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /pty without an upgrade = %d; want 400", resp.StatusCode)
	}

	// Another project's key: the sandbox does not exist for it.
	if _, err := e.c.CreateProject(ctx(t), &apiv1.ProjectRequest{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	k, err := e.c.CreateKey(ctx(t), &apiv1.KeyRequest{Project: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.WithKey(k.Key).Pty(ctx(t), vm.ID, &client.PtyOptions{Command: "true"}); !client.IsNotFound(err) {
		t.Errorf("another project's key opened a terminal: %v; want 404", err)
	}
}

// TestShellCLI runs `aether shell` in a real terminal (a pty on the test's
// side): what is typed reaches the sandbox's shell, its output comes back,
// a resize of the local terminal reaches the remote one (SIGWINCH), and
// the CLI exits with the remote exit code.
func TestShellCLI(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	e.MustCreateVM(&client.CreateVMRequest{Name: "shell"})
	cmd := exec.Command(e.cli, "shell", "shell", "--", "sh")
	cmd.Env = append(e.cliEnv(), "AETHER_SERVER=http://"+e.addr)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 90, Rows: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out := watch(tty)
	io.WriteString(tty, "stty size; echo h\"\"i\r")
	out.waitFor(t, "20 90")
	out.waitFor(t, "hi")
	if err := pty.Setsize(tty, &pty.Winsize{Cols: 120, Rows: 40}); err != nil {
		t.Fatal(err)
	}
	// SIGWINCH and the typed line race; ask until the new size shows.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "40 120"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the remote terminal never became 40x120: %q", out.String())
		}
		io.WriteString(tty, "stty size\r")
	}
	io.WriteString(tty, "exit 3\r")
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("aether shell exited %v; want 3; output %q", err, out.String())
	}
}
