package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/aetherium/aetherium/internal/agentproto"
)

// signalAllowed are the signals a host may send to a tracked process.
var signalAllowed = map[syscall.Signal]bool{
	syscall.SIGHUP: true, syscall.SIGINT: true, syscall.SIGQUIT: true, syscall.SIGKILL: true,
	syscall.SIGTERM: true, syscall.SIGUSR1: true, syscall.SIGUSR2: true, syscall.SIGTSTP: true,
	syscall.SIGCONT: true, syscall.SIGWINCH: true,
}

// procError is a process-table failure with its wire error code.
type procError struct {
	code string
	msg  string
}

func (e *procError) Error() string { return e.msg }

func failProc(st *stream, err error) {
	var pe *procError
	if errors.As(err, &pe) {
		st.fail(pe.code, err)
		return
	}
	st.fail(startErrorCode(err), err)
}

// tracked is a process started with Background or KeepRunning: the agent
// keeps it, and its output, after the stream that started it is gone.
type tracked struct {
	p       *process
	argv    []string
	out     *outputRing
	mu      sync.Mutex
	running bool
	ended   time.Time
}

func (t *tracked) info() agentproto.Process {
	t.mu.Lock()
	running := t.running
	t.mu.Unlock()
	total, dropped := t.out.stats()
	_, _, exit, _ := t.out.since(total)
	return agentproto.Process{PID: t.p.pid, Argv: t.argv, StartedAt: t.p.started, Running: running,
		Exit: exit, OutputBytes: total, Dropped: dropped}
}

// procTable is the agent's table of tracked processes, by PID. Only PIDs
// in it ever reach kill(2) from a request.
type procTable struct {
	mu    sync.Mutex
	max   int
	procs map[int]*tracked
}

func newProcTable(max int) *procTable {
	return &procTable{max: max, procs: make(map[int]*tracked)}
}

// start runs startFn (which starts the process) once the table has room,
// evicting the finished process that ended first if it is full, and adds
// the result. A table full of running processes is a conflict.
func (pt *procTable) start(startFn func() (*tracked, error)) (*tracked, error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if len(pt.procs) >= pt.max && !pt.evictOne() {
		return nil, &procError{agentproto.CodeConflict, fmt.Sprintf("%d background processes are running (at most %d): signal some first", len(pt.procs), pt.max)}
	}
	t, err := startFn()
	if err != nil {
		return nil, err
	}
	pt.procs[t.p.pid] = t // a finished process whose PID was reused is forgotten
	return t, nil
}

// evictOne forgets the finished process that ended first; false when every
// process still runs. The caller holds pt.mu.
func (pt *procTable) evictOne() bool {
	victim := 0
	var oldest time.Time
	for pid, t := range pt.procs {
		t.mu.Lock()
		running, ended := t.running, t.ended
		t.mu.Unlock()
		if !running && (victim == 0 || ended.Before(oldest)) {
			victim, oldest = pid, ended
		}
	}
	if victim == 0 {
		return false
	}
	delete(pt.procs, victim)
	return true
}

// len is how many processes the table holds, running or ended.
func (pt *procTable) len() int {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return len(pt.procs)
}

func (pt *procTable) get(pid int) (*tracked, error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	t, ok := pt.procs[pid]
	if !ok {
		return nil, &procError{agentproto.CodeNotFound, fmt.Sprintf("process %d was not started through Aetherium (or was forgotten)", pid)}
	}
	return t, nil
}

func (pt *procTable) list() []agentproto.Process {
	pt.mu.Lock()
	ts := make([]*tracked, 0, len(pt.procs))
	for _, t := range pt.procs {
		ts = append(ts, t)
	}
	pt.mu.Unlock()
	out := make([]agentproto.Process, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.info())
	}
	slices.SortFunc(out, func(a, b agentproto.Process) int { return a.StartedAt.Compare(b.StartedAt) })
	fitListing(out)
	return out
}

// fitListing keeps a process listing within half a frame: past that, a
// process's argv is cut to its program (at most 256 processes of at most
// 32 arguments of 256 bytes, JSON-escaped, would not fit a frame, and the
// listing would fail instead).
func fitListing(ps []agentproto.Process) {
	size := 0
	for i := range ps {
		b, _ := json.Marshal(ps[i])
		if size+len(b) > agentproto.MaxPayload/2 && len(ps[i].Argv) > 0 {
			ps[i].Argv = []string{ps[i].Argv[0][:min(len(ps[i].Argv[0]), 64)], "…"}
			b, _ = json.Marshal(ps[i])
		}
		size += len(b)
	}
}

// signal sends sig to the process group of a tracked process that still
// runs. Everything else is refused before kill(2).
func (pt *procTable) signal(pid int, sig syscall.Signal) error {
	if !signalAllowed[sig] {
		return &procError{agentproto.CodeInvalidArgument, fmt.Sprintf("signal %d may not be sent", int(sig))}
	}
	t, err := pt.get(pid)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.running {
		return &procError{agentproto.CodeConflict, fmt.Sprintf("process %d has exited", pid)}
	}
	t.p.kill(sig)
	return nil
}

// startTracked starts req as a tracked process whose output goes to a ring
// buffer. It keeps running when the stream that started it ends.
func (s *Server) startTracked(req *agentproto.ExecRequest) (*tracked, error) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, &procError{agentproto.CodeInvalidArgument, "exec: empty argv"}
	}
	if req.Background && req.Stdin {
		return nil, &procError{agentproto.CodeInvalidArgument, "exec: a background process has no stdin"}
	}
	return s.procs.start(func() (*tracked, error) {
		p, err := s.startProcess(req)
		if err != nil {
			return nil, err
		}
		t := &tracked{p: p, argv: shortArgv(req.Argv), out: newOutputRing(s.cfg.MaxProcessOutput), running: true}
		go s.runTracked(t, time.Duration(req.TimeoutMS)*time.Millisecond)
		return t, nil
	})
}

// shortArgv bounds what the process table keeps of a command line.
func shortArgv(argv []string) []string {
	out := make([]string, 0, min(len(argv), 32))
	for _, a := range argv[:min(len(argv), 32)] {
		if len(a) > 256 {
			a = a[:256]
		}
		out = append(out, a)
	}
	return out
}

// runTracked copies t's output into its ring until it exits (killing it at
// its timeout, if any) and records the exit.
func (s *Server) runTracked(t *tracked, timeout time.Duration) {
	p := t.p
	var pumps sync.WaitGroup
	pumps.Add(2)
	go p.pumpRing(&pumps, t.out, agentproto.TypeStdout, p.stdout)
	go p.pumpRing(&pumps, t.out, agentproto.TypeStderr, p.stderr)
	ws, timedOut := p.waitExit(timeout, nil, nil)
	t.mu.Lock()
	t.running, t.ended = false, time.Now()
	t.mu.Unlock()
	dur := time.Since(p.started)
	p.drain(&pumps)
	p.closeAll()
	t.out.finish(exitFrame(ws, timedOut, dur))
}

// pumpRing copies r into the ring until EOF.
func (p *process) pumpRing(wg *sync.WaitGroup, ring *outputRing, t agentproto.FrameType, r interface{ Read([]byte) (int, error) }) {
	defer wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			ring.write(t, buf[:n])
			p.lastIO.Store(time.Now().UnixNano())
		}
		if err != nil {
			return
		}
	}
}

// execBackground starts req and answers its PID.
func (s *Server) execBackground(st *stream, req *agentproto.ExecRequest) {
	t, err := s.startTracked(req)
	if err != nil {
		failProc(st, err)
		return
	}
	st.writeJSON(agentproto.TypeResponse, agentproto.Response{PID: t.p.pid})
}

// execKeepRunning starts req and streams its output like a followed output
// stream, passing the host's stdin and signals on; the stream breaking
// leaves the process running.
func (s *Server) execKeepRunning(ctx context.Context, st *stream, req *agentproto.ExecRequest) {
	t, err := s.startTracked(req)
	if err != nil {
		failProc(st, err)
		return
	}
	hostGone := make(chan struct{})
	go t.p.readHost(st, hostGone)
	s.streamOutput(ctx, st, t, true, hostGone)
}

// output serves the output operation.
func (s *Server) output(ctx context.Context, st *stream, req *agentproto.OutputRequest) {
	t, err := s.procs.get(req.PID)
	if err != nil {
		failProc(st, err)
		return
	}
	_, dropped := t.out.stats()
	if st.writeJSON(agentproto.TypeResponse, agentproto.Response{PID: req.PID, Dropped: dropped}) != nil {
		return
	}
	hostGone := make(chan struct{})
	go func() { // the host sends nothing more: a read ends when it leaves
		var b [1]byte
		st.Read(b[:])
		close(hostGone)
	}()
	s.streamOutput(ctx, st, t, req.Follow, hostGone)
}

// streamOutput sends t's buffered output and, with follow, what follows,
// then the exit (or DataEnd for a process that runs on without follow).
func (s *Server) streamOutput(ctx context.Context, st *stream, t *tracked, follow bool, hostGone <-chan struct{}) {
	var off int64
	for {
		chunks, next, exit, changed := t.out.since(off)
		for _, c := range chunks {
			for b := c.data; len(b) > 0; {
				n := min(len(b), maxChunk)
				if st.write(c.typ, b[:n]) != nil {
					return
				}
				b = b[n:]
			}
		}
		off = next
		switch {
		case exit != nil:
			st.writeJSON(agentproto.TypeExit, exit)
			return
		case !follow:
			st.write(agentproto.TypeDataEnd, nil)
			return
		}
		select {
		case <-changed:
		case <-hostGone:
			return
		case <-ctx.Done():
			return
		}
	}
}

// signalProcess serves the signal operation.
func (s *Server) signalProcess(st *stream, req *agentproto.ProcessSignal) {
	if err := s.procs.signal(req.PID, syscall.Signal(req.Signal)); err != nil {
		failProc(st, err)
		return
	}
	st.writeJSON(agentproto.TypeResponse, agentproto.Response{PID: req.PID})
}
