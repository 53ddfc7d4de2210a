package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/agentproto"
)

// pipeDrainGrace is how long the pipes may stay quiet after the process
// exits before the stream ends without their EOF. A background child that
// inherited the pipes would otherwise hold the stream open forever; output
// still flowing (or still being sent over a slow transport) is never cut.
const pipeDrainGrace = 200 * time.Millisecond

// exec runs one process and streams its output on st until it exits.
func (s *Server) exec(ctx context.Context, st *stream, req *agentproto.ExecRequest) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		st.fail(agentproto.CodeInvalidArgument, errors.New("exec: empty argv"))
		return
	}
	p, err := s.startProcess(req)
	if err != nil {
		st.fail(startErrorCode(err), err)
		return
	}
	defer p.closeAll()

	var outWG sync.WaitGroup
	outWG.Add(2)
	go p.pump(&outWG, st, agentproto.TypeStdout, p.stdout)
	go p.pump(&outWG, st, agentproto.TypeStderr, p.stderr)
	hostGone := make(chan struct{})
	go p.readHost(st, hostGone)

	// When the host cancels (or vanishes), nobody will read the output.
	ws, timedOut := p.waitExit(time.Duration(req.TimeoutMS)*time.Millisecond, hostGone, ctx.Done())
	dur := time.Since(p.started)
	// Background children may keep the pipes open; they keep running (users
	// start servers this way) but the stream ends after a short grace.
	p.drain(&outWG)
	st.writeJSON(agentproto.TypeExit, exitFrame(ws, timedOut, dur))
}

// waitExit waits for p to exit, killing it (SIGKILL to its group) at its
// timeout (0: none) or once stop or gone closes, and says how it ended.
func (p *process) waitExit(timeout time.Duration, stop, gone <-chan struct{}) (ws syscall.WaitStatus, timedOut bool) {
	var expire <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expire = t.C
	}
	for {
		select {
		case ws = <-p.wait:
			return ws, timedOut
		case <-expire:
			timedOut = true
			p.kill(syscall.SIGKILL)
			expire = nil
		case <-stop:
			p.kill(syscall.SIGKILL)
			stop = nil
		case <-gone:
			p.kill(syscall.SIGKILL)
			gone = nil
		}
	}
}

// startErrorCode classifies why a process could not start.
func startErrorCode(err error) string {
	switch {
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist):
		return agentproto.CodeNotFound
	case errors.Is(err, os.ErrPermission):
		return agentproto.CodePermission
	}
	return agentproto.CodeInternal
}

func exitFrame(ws syscall.WaitStatus, timedOut bool, dur time.Duration) agentproto.Exit {
	e := agentproto.Exit{ExitCode: ws.ExitStatus(), TimedOut: timedOut, DurationMS: dur.Milliseconds()}
	if ws.Signaled() {
		e.ExitCode = -1
		e.Signal = sigName(ws.Signal())
	}
	return e
}

// process is one started child with the agent's ends of its pipes.
type process struct {
	pid            int
	started        time.Time
	wait           <-chan syscall.WaitStatus
	stdin          *os.File // nil when the request has no stdin
	stdout, stderr *os.File
	stdinOnce      sync.Once
	// lastIO (unix nanos) is when a pump last read or sent output; sending
	// counts pumps blocked sending to the host.
	lastIO  atomic.Int64
	sending atomic.Int32
}

// drain waits for the pumps to reach EOF after the process exited, ending
// them only once the pipes have been quiet for pipeDrainGrace.
func (p *process) drain(pumps *sync.WaitGroup) {
	drained := make(chan struct{})
	go func() { pumps.Wait(); close(drained) }()
	p.lastIO.Store(time.Now().UnixNano())
	tick := time.NewTicker(pipeDrainGrace / 4)
	defer tick.Stop()
	for {
		select {
		case <-drained:
			return
		case <-tick.C:
			idle := time.Since(time.Unix(0, p.lastIO.Load()))
			if p.sending.Load() == 0 && idle >= pipeDrainGrace && !p.unread() {
				p.stdout.Close()
				p.stderr.Close()
				<-drained
				return
			}
		}
	}
}

// unread reports whether output still waits in a pipe: a pump that did not
// get a core for pipeDrainGrace (a loaded guest) has not read it yet, and
// closing the pipe then would lose it. Output of a process that exited is
// all in its pipes, so only a background child's later writes can be cut.
func (p *process) unread() bool {
	for _, f := range []*os.File{p.stdout, p.stderr} {
		if f == nil {
			continue
		}
		n := 0
		if rc, err := f.SyscallConn(); err == nil { // not Fd(): that would make f blocking
			rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
		}
		if n > 0 {
			return true
		}
	}
	return false
}

func (s *Server) startProcess(req *agentproto.ExecRequest) (*process, error) {
	p := &process{}
	var childIn, childOut, childErr *os.File
	var err error
	if req.Stdin {
		if childIn, p.stdin, err = os.Pipe(); err != nil {
			return nil, err
		}
	} else if childIn, err = os.Open(os.DevNull); err != nil {
		return nil, err
	}
	defer childIn.Close()
	if p.stdout, childOut, err = os.Pipe(); err != nil {
		p.closeAll()
		return nil, err
	}
	defer childOut.Close()
	if p.stderr, childErr, err = os.Pipe(); err != nil {
		p.closeAll()
		return nil, err
	}
	defer childErr.Close()
	sp := spawn{argv: req.Argv, env: append(baseEnv(), req.Env...), cwd: req.Cwd, user: req.User,
		files: []*os.File{childIn, childOut, childErr}, attr: &syscall.SysProcAttr{Setpgid: true}}
	if err := s.start(p, &sp); err != nil {
		p.closeAll()
		return nil, err
	}
	return p, nil
}

// spawn is what start needs to run a program.
type spawn struct {
	argv  []string // argv[0] is found by program
	env   []string
	cwd   string // "" means "/"
	user  string // "" means the agent's
	files []*os.File
	attr  *syscall.SysProcAttr
}

// start runs sp in the workload cgroup under the reaper and fills in p's
// pid, wait channel and start time.
func (s *Server) start(p *process, sp *spawn) error {
	attr := sp.attr
	if cg := s.cfg.WorkloadCgroup; cg != nil {
		attr.UseCgroupFD, attr.CgroupFD = true, int(cg.Fd())
	}
	if sp.user != "" {
		cred, err := lookupUser(sp.user)
		if err != nil {
			return err
		}
		attr.Credential = cred
	}
	cwd := sp.cwd
	if cwd == "" {
		cwd = "/"
	}
	path, err := program(sp.argv[0], cwd, sp.env)
	if err != nil {
		return err
	}
	pattr := &os.ProcAttr{Dir: cwd, Env: sp.env, Files: sp.files, Sys: attr}
	start := func() (int, error) {
		proc, err := os.StartProcess(path, sp.argv, pattr)
		if err != nil {
			return 0, err
		}
		p.pid = proc.Pid
		proc.Release() // the reaper waits, not os.Process
		return p.pid, nil
	}
	if s.forker != nil {
		start = s.forker.wrap(start)
	}
	p.wait, err = s.reaper.start(start)
	if err != nil {
		return err
	}
	p.started = time.Now()
	// Keep the agent alive under memory pressure: the workload, not the agent,
	// is the OOM killer's victim (the agent itself runs with a low score).
	os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", p.pid), []byte("500"), 0)
	return nil
}

func (p *process) kill(sig syscall.Signal) {
	if p.pid > 0 {
		syscall.Kill(-p.pid, sig)
	}
}

func (p *process) closeAll() {
	for _, f := range []*os.File{p.stdin, p.stdout, p.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

func (p *process) pump(wg *sync.WaitGroup, st *stream, t agentproto.FrameType, r io.Reader) {
	defer wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p.sending.Add(1)
			werr := st.write(t, buf[:n])
			p.sending.Add(-1)
			p.lastIO.Store(time.Now().UnixNano())
			if werr != nil {
				io.Copy(io.Discard, r) // keep the child from blocking on a full pipe
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// readHost applies the host's stdin and signal frames. It closes hostGone when
// the stream breaks before the exit frame was written.
func (p *process) readHost(st *stream, hostGone chan<- struct{}) {
	for {
		f, err := agentproto.ReadFrame(st, 0)
		if err != nil {
			p.closeStdin()
			close(hostGone)
			return
		}
		switch f.Type {
		case agentproto.TypeStdin:
			if p.stdin != nil {
				p.stdin.Write(f.Payload)
			}
		case agentproto.TypeStdinClose:
			p.closeStdin()
		case agentproto.TypeSignal:
			var sr agentproto.SignalRequest
			if json.Unmarshal(f.Payload, &sr) == nil && sr.Signal > 0 && sr.Signal < 65 {
				p.kill(syscall.Signal(sr.Signal))
			}
		}
	}
}

func (p *process) closeStdin() {
	p.stdinOnce.Do(func() {
		if p.stdin != nil {
			p.stdin.Close()
		}
	})
}

// program finds the file the command name stands for as the command's own
// environment would: a name with a slash is a path, relative to the
// command's directory cwd (not the agent's); a bare name is searched for in
// the PATH of the command's environment env (its last PATH= wins; the
// agent's own PATH may differ), relative entries again from cwd.
func program(name, cwd string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return exec.LookPath(inDir(cwd, name))
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if p, err := exec.LookPath(inDir(cwd, filepath.Join(dir, name))); err == nil {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// inDir is p, made absolute from dir when it is relative.
func inDir(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func lookupUser(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("user %q: %w", name, os.ErrNotExist)
		}
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// baseEnv is the environment every process starts from. As PID 1 the agent
// may have almost none, so PATH and HOME get sane values.
func baseEnv() []string {
	env := os.Environ()
	if os.Getenv("PATH") == "" {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	if os.Getenv("HOME") == "" {
		env = append(env, "HOME=/root")
	}
	return env
}

func sigName(s syscall.Signal) string {
	names := map[syscall.Signal]string{
		syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT",
		syscall.SIGHUP: "SIGHUP", syscall.SIGQUIT: "SIGQUIT", syscall.SIGSEGV: "SIGSEGV",
		syscall.SIGABRT: "SIGABRT", syscall.SIGPIPE: "SIGPIPE", syscall.SIGUSR1: "SIGUSR1",
		syscall.SIGUSR2: "SIGUSR2", syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE",
	}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("SIG%d", int(s))
}
