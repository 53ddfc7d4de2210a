// Package agent is the guest side of the agent protocol: the server that
// aether-agent runs inside every sandbox. Only cmd/aether-agent and tests
// import it; the host side is package agentclient.
//
// The server handles any number of host connections and, on each, any number
// of concurrent operations (see package agentproto). It works both as an
// ordinary process and as PID 1 of a microVM or container: it reaps every
// child itself, including orphans re-parented to it.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/aetherium/aetherium/internal/agentproto"
)

// Config configures a Server.
type Config struct {
	// Version is the agent build version reported in the handshake. Empty means "dev".
	Version string
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
	// HandshakeTimeout bounds how long a new connection may take to say hello.
	// Zero means 10s.
	HandshakeTimeout time.Duration
	// WorkloadCgroup, when set, is an open cgroup v2 directory every command
	// starts in (a microVM's agent puts a memory limit on it, so a workload
	// that exhausts memory is killed there instead of starving the agent).
	WorkloadCgroup *os.File
	// WorkloadGroup makes every command start from one thread that the host
	// moves into a cgroup v1 pids group of its own after the handshake (the
	// Docker runtime's workload group, with less room than the container,
	// so a fork bomb fills that group and the agent keeps pids to run); see
	// forker. Commands are refused until the thread is there.
	WorkloadGroup bool
	// MaxProcesses bounds the table of background processes. Zero means
	// agentproto.MaxProcesses.
	MaxProcesses int
	// MaxProcessOutput bounds the output kept per background process, in
	// bytes. Zero means agentproto.MaxProcessOutput.
	MaxProcessOutput int
	// IdleTrim is how long the server waits with no stream open before it
	// returns its free heap to the OS (see trimmer). Zero means 5s;
	// negative never.
	IdleTrim time.Duration
	// Dormant, when set, is called once the server has had no host
	// connection, no stream and no tracked process for DormantAfter. It
	// replaces the process (cmd/aether-agent execs aether-waiter) and
	// returns only on failure, which is logged; the agent then stays.
	Dormant func() error
	// DormantAfter is that wait; zero or negative never calls Dormant.
	DormantAfter time.Duration
}

func (c *Config) withDefaults() {
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MaxProcesses == 0 {
		c.MaxProcesses = agentproto.MaxProcesses
	}
	if c.MaxProcessOutput == 0 {
		c.MaxProcessOutput = agentproto.MaxProcessOutput
	}
	if c.IdleTrim == 0 {
		c.IdleTrim = 5 * time.Second
	}
}

// Server serves the agent protocol. It is safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	reaper *reaper
	forker *forker // nil without cfg.WorkloadGroup
	procs  *procTable
	execs  atomic.Int64
	trim   *trimmer
	dorm   *dormancy // nil unless cfg.Dormant is set
}

// New returns a Server and starts its child reaper.
func New(cfg Config) *Server {
	cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "agent"), reaper: startReaper(),
		procs: newProcTable(cfg.MaxProcesses), trim: newTrimmer(cfg.IdleTrim)}
	if cfg.WorkloadGroup {
		s.forker = startForker(inOwnPidsGroup)
	}
	s.dorm = newDormancy(cfg.DormantAfter, cfg.Dormant, func() bool { return s.trim.open.Load() > 0 }, func() bool { return s.procs.len() > 0 }, s.log)
	return s
}

// Serve accepts connections on l until ctx is done or l fails.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		wg.Add(1)
		s.dorm.connBegin()
		go func() {
			defer wg.Done()
			defer s.dorm.connEnd()
			if err := s.ServeConn(ctx, conn); err != nil {
				s.log.WarnContext(ctx, "connection ended", slog.Any("err", err))
			}
		}()
	}
}

// ServeConn runs the handshake and then serves operations on one connection
// until it closes or ctx is done. It closes conn.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	if err := s.handshake(conn); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	ycfg := yamux.DefaultConfig()
	ycfg.LogOutput = io.Discard
	ycfg.EnableKeepAlive = false // the host decides when a connection is dead
	sess, err := yamux.Server(conn, ycfg)
	if err != nil {
		return err
	}
	defer sess.Close()
	go func() {
		select {
		case <-ctx.Done():
			sess.Close()
		case <-sess.CloseChan():
		}
	}()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if errors.Is(err, io.EOF) || sess.IsClosed() {
				return nil
			}
			return err
		}
		s.trim.begin()
		go func() {
			defer s.trim.end()
			s.serveStream(ctx, st)
		}()
	}
}

func (s *Server) handshake(conn net.Conn) error {
	conn.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	defer conn.SetDeadline(time.Time{})
	f, err := agentproto.ReadFrame(conn, 4096)
	if err != nil {
		return err
	}
	var hello agentproto.Hello
	if err := f.Decode(agentproto.TypeHello, &hello); err != nil {
		return err
	}
	v, err := agentproto.Negotiate(hello.Version, hello.MinVersion)
	if err != nil {
		agentproto.WriteJSON(conn, agentproto.TypeError, agentproto.RemoteError{Code: agentproto.CodeInvalidArgument, Message: err.Error()})
		return err
	}
	host, _ := os.Hostname()
	answer := agentproto.Hello{Version: v, MinVersion: agentproto.MinVersion, Agent: s.cfg.Version, PID1: os.Getpid() == 1, Hostname: host}
	if s.forker != nil {
		answer.ForkerTID = s.forker.tid
	}
	return agentproto.WriteJSON(conn, agentproto.TypeHello, answer)
}

// stream serializes frame writes on one yamux stream: exec writes stdout,
// stderr and exit from different goroutines.
type stream struct {
	net.Conn
	mu sync.Mutex
}

func (st *stream) write(t agentproto.FrameType, p []byte) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return agentproto.WriteFrame(st.Conn, t, p)
}

func (st *stream) writeJSON(t agentproto.FrameType, v any) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return agentproto.WriteJSON(st.Conn, t, v)
}

func (st *stream) fail(code string, err error) {
	st.writeJSON(agentproto.TypeError, agentproto.RemoteError{Code: code, Message: err.Error()})
}

func (s *Server) serveStream(ctx context.Context, c net.Conn) {
	st := &stream{Conn: c}
	defer st.Close()
	f, err := agentproto.ReadFrame(st, 0)
	if err != nil {
		return
	}
	var req agentproto.Request
	if err := f.Decode(agentproto.TypeRequest, &req); err != nil {
		st.fail(agentproto.CodeInvalidArgument, err)
		return
	}
	switch {
	case req.Op == agentproto.OpExec && req.Exec != nil && req.Exec.Background:
		s.execBackground(st, req.Exec)
	case req.Op == agentproto.OpExec && req.Exec != nil && req.Exec.KeepRunning:
		s.execKeepRunning(ctx, st, req.Exec)
	case req.Op == agentproto.OpExec && req.Exec != nil:
		s.execs.Add(1)
		defer s.execs.Add(-1)
		s.exec(ctx, st, req.Exec)
	case req.Op == agentproto.OpFilePut && req.FilePut != nil:
		s.filePut(st, req.FilePut)
	case req.Op == agentproto.OpFileGet && req.FileGet != nil:
		s.fileGet(st, req.FileGet)
	case req.Op == agentproto.OpPty && req.Pty != nil:
		s.execs.Add(1)
		defer s.execs.Add(-1)
		s.pty(ctx, st, req.Pty)
	case req.Op == agentproto.OpDial && req.Dial != nil:
		s.dial(st, req.Dial)
	case req.Op == agentproto.OpProcesses:
		st.writeJSON(agentproto.TypeResponse, agentproto.Response{Processes: s.procs.list()})
	case req.Op == agentproto.OpSignal && req.Signal != nil:
		s.signalProcess(st, req.Signal)
	case req.Op == agentproto.OpOutput && req.Output != nil:
		s.output(ctx, st, req.Output)
	case req.Op == agentproto.OpList && req.List != nil:
		s.list(st, req.List)
	case req.Op == agentproto.OpWatch && req.Watch != nil:
		s.watch(st, req.Watch)
	case req.Op == agentproto.OpHealth:
		st.writeJSON(agentproto.TypeResponse, agentproto.Response{Execs: int(s.execs.Load())})
	default:
		st.fail(agentproto.CodeInvalidArgument, fmt.Errorf("unknown or incomplete operation %q", req.Op))
	}
}
