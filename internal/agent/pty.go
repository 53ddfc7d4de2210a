package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/agentproto"
)

// pty runs one process on a new pseudo-terminal and streams the terminal's
// output on st until the process exits (see agentproto: pty).
func (s *Server) pty(ctx context.Context, st *stream, req *agentproto.PtyRequest) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		st.fail(agentproto.CodeInvalidArgument, errors.New("pty: empty argv"))
		return
	}
	p, err := s.startPty(req)
	if err != nil {
		st.fail(startErrorCode(err), err)
		return
	}
	defer p.closeAll()
	if err := st.writeJSON(agentproto.TypeResponse, agentproto.Response{}); err != nil {
		p.kill(syscall.SIGKILL)
		<-p.wait
		return
	}
	var outWG sync.WaitGroup
	outWG.Add(1)
	go p.pump(&outWG, st, agentproto.TypeStdout, p.stdout)
	hostGone := make(chan struct{})
	go p.readPtyHost(st, hostGone)

	var ws syscall.WaitStatus
	for done := false; !done; {
		select {
		case ws = <-p.wait:
			done = true
		case <-hostGone:
			p.kill(syscall.SIGKILL)
			hostGone = nil
		case <-ctx.Done():
			p.kill(syscall.SIGKILL)
			ctx = context.Background()
		}
	}
	dur := time.Since(p.started)
	// A background child may hold the terminal open; the stream ends once
	// it has been quiet for the grace, as exec's does.
	p.drain(&outWG)
	st.writeJSON(agentproto.TypeExit, exitFrame(ws, false, dur))
}

// startPty opens a pseudo-terminal and starts req on it as the leader of a
// new session whose controlling terminal it is. The agent keeps the master
// (p.stdin and p.stdout).
func (s *Server) startPty(req *agentproto.PtyRequest) (*process, error) {
	master, tty, err := openPty()
	if err != nil {
		return nil, err
	}
	defer tty.Close()
	p := &process{stdin: master, stdout: master}
	cols, rows := req.Cols, req.Rows
	if cols == 0 || rows == 0 {
		cols, rows = 80, 24
	}
	if err := setWinsize(master, cols, rows); err != nil {
		master.Close()
		return nil, err
	}
	env := append(baseEnv(), req.Env...)
	if !slices.ContainsFunc(req.Env, func(kv string) bool { return strings.HasPrefix(kv, "TERM=") }) {
		env = append(env, "TERM=xterm-256color")
	}
	sp := spawn{argv: req.Argv, env: env, cwd: req.Cwd, user: req.User,
		files: []*os.File{tty, tty, tty}, attr: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}}
	if err := s.start(p, &sp); err != nil {
		master.Close()
		return nil, err
	}
	return p, nil
}

// openPty opens a new pseudo-terminal pair. The master is non-blocking, so
// closing it ends a pending read (creack/pty's master is blocking: a
// background process holding the terminal would pin the reader forever).
func openPty() (master, tty *os.File, err error) {
	path := "/dev/ptmx"
	if _, err := os.Stat(path); err != nil {
		path = "/dev/pts/ptmx"
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	master = os.NewFile(uintptr(fd), "ptmx")
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, tty, nil
}

// control runs fn on f's descriptor without putting it in blocking mode (as
// f.Fd() would).
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func setWinsize(master *os.File, cols, rows uint16) error {
	return control(master, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	})
}

// signalForeground sends sig to the terminal's foreground process group,
// which is what a key like Ctrl-C reaches, or to the session's group when
// there is none.
func (p *process) signalForeground(sig syscall.Signal) {
	var pgrp int
	control(p.stdout, func(fd int) (err error) {
		pgrp, err = unix.IoctlGetInt(fd, unix.TIOCGPGRP)
		return err
	})
	if pgrp <= 0 {
		p.kill(sig)
		return
	}
	syscall.Kill(-pgrp, sig)
}

// readPtyHost applies the host's input, resize and signal frames. It closes
// hostGone when the stream breaks.
func (p *process) readPtyHost(st *stream, hostGone chan<- struct{}) {
	for {
		f, err := agentproto.ReadFrame(st, 0)
		if err != nil {
			close(hostGone)
			return
		}
		switch f.Type {
		case agentproto.TypeStdin:
			p.stdin.Write(f.Payload)
		case agentproto.TypeResize:
			var rs agentproto.Resize
			if json.Unmarshal(f.Payload, &rs) == nil && rs.Cols > 0 && rs.Rows > 0 {
				setWinsize(p.stdout, rs.Cols, rs.Rows)
			}
		case agentproto.TypeSignal:
			var sr agentproto.SignalRequest
			if json.Unmarshal(f.Payload, &sr) == nil && sr.Signal > 0 && sr.Signal < 65 {
				p.signalForeground(syscall.Signal(sr.Signal))
			}
		}
	}
}
