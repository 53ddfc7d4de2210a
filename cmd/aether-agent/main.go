// Command aether-agent runs inside every sandbox and serves the agent protocol
// (see internal/agentproto) to the host. It is static (CGO off) so it runs in
// any rootfs, and it can be PID 1: it reaps orphans and mounts /proc when
// nothing else did.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/aetherium/aetherium/internal/agent"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "aether-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	dropPtrace() // first: the workload may be waiting for this process (see sleeper.sleep)
	fs := flag.NewFlagSet("aether-agent", flag.ContinueOnError)
	listen := fs.String("listen", "unix:/run/aether/agent.sock", "where to serve: unix:PATH, vsock:PORT or serial:NAME|DEVICE")
	workloadGroup := fs.Bool("workload-group", false, "start every command from a thread the host moves into a cgroup v1 pids group of its own (the Docker runtime's workload group); refuse commands until it is there")
	// Containers made by an older aetherd pass a tasks file to join; the
	// host joins the thread now, and the file is never opened.
	oldTasks := fs.String("workload-tasks", "", "deprecated: as --workload-group")
	dormantAfter := fs.Duration("dormant-after", 0, "after this long with no host connection, operation or tracked process, swap this agent for aether-waiter (--waiter), which holds PID 1 and the socket until the next connection starts the agent again; 0 never")
	waiterPath := fs.String("waiter", "", "aether-waiter, for --dormant-after (a unix --listen only)")
	resumeFDs := fs.String(resumeFlag[2:], "", "set by aether-waiter: the descriptors it passes on (LISTEN,SELF,WAITER)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version)
		return nil
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var workload *os.File
	if os.Getpid() == 1 && *resumeFDs == "" {
		// (A resumed agent did this at its first start; the sandbox's
		// paths are the workload's by now.)
		workload = initPID1(log)
	}
	cfg := agent.Config{Version: version, Logger: log, WorkloadCgroup: workload, WorkloadGroup: *workloadGroup || *oldTasks != ""}
	log.Info("agent serving", slog.String("listen", *listen), slog.String("version", version), slog.Bool("resumed", *resumeFDs != ""))
	if dev, ok := strings.CutPrefix(*listen, "serial:"); ok {
		return serveSerial(ctx, agent.New(cfg), dev, log)
	}
	l, sl, err := openListener(ctx, *listen, *resumeFDs, *dormantAfter, *waiterPath, log)
	if err != nil {
		return err
	}
	if sl != nil {
		cfg.Dormant, cfg.DormantAfter = sl.sleep, *dormantAfter
	}
	return agent.New(cfg).Serve(ctx, l)
}

// openListener returns the agent's listener: the one a waiter passed on
// (resumeFDs; before anything starts a process, since the descriptors are
// close-on-exec again only then), or a new one on addr; and, for a
// dormancy after dormantAfter, the sleeper that swaps the agent for the
// waiter at waiterPath.
func openListener(ctx context.Context, addr, resumeFDs string, dormantAfter time.Duration, waiterPath string, log *slog.Logger) (net.Listener, *sleeper, error) {
	if resumeFDs != "" {
		return resume(ctx, resumeFDs, withoutResume(os.Args[1:]))
	}
	l, err := listenOn(addr)
	if err != nil || dormantAfter <= 0 {
		return l, nil, err
	}
	sl, err := newSleeper(ctx, l, waiterPath, os.Args[1:])
	if err != nil {
		log.Warn("the agent will not go dormant", slog.Any("err", err))
	}
	return l, sl, nil
}

// withoutResume returns args without the --resume flag and its value.
func withoutResume(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		name := strings.TrimLeft(args[i], "-")
		switch {
		case name == resumeFlag[2:] && args[i] != name:
			i++ // its value
		case strings.HasPrefix(name, resumeFlag[2:]+"=") && args[i] != name:
		default:
			out = append(out, args[i])
		}
	}
	return out
}

// serveSerial serves a virtio-serial port: a single byte stream with no
// accept. Each host connection is one session; when it ends the port is
// opened again for the next.
func serveSerial(ctx context.Context, srv *agent.Server, port string, log *slog.Logger) error {
	for ctx.Err() == nil {
		dev := serialDevice(port)
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			log.Warn("open serial port", slog.String("device", dev), slog.Any("err", err))
			time.Sleep(200 * time.Millisecond)
			continue
		}
		// With no host connected the port reads EOF at once; the host's
		// hello waits in the port's buffer, so polling briefly is enough.
		if err := srv.ServeConn(ctx, fileConn{f}); err != nil && !errors.Is(err, io.EOF) {
			log.Info("serial session ended", slog.Any("err", err))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// serialDevice resolves a virtio-serial port given by name (as the host
// named it: name=aether) to its /dev node through sysfs; a path is used as is.
func serialDevice(port string) string {
	if strings.HasPrefix(port, "/") {
		return port
	}
	names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil && strings.TrimSpace(string(b)) == port {
			return "/dev/" + filepath.Base(filepath.Dir(n))
		}
	}
	return "/dev/virtio-ports/" + port
}

// fileConn lets a character device carry the agent protocol.
type fileConn struct{ *os.File }

func (fileConn) LocalAddr() net.Addr  { return serialAddr{} }
func (fileConn) RemoteAddr() net.Addr { return serialAddr{} }

type serialAddr struct{}

func (serialAddr) Network() string { return "serial" }
func (serialAddr) String() string  { return "virtio-serial" }

func listenOn(addr string) (net.Listener, error) {
	if port, ok := strings.CutPrefix(addr, "vsock:"); ok {
		p, err := strconv.ParseUint(port, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--listen %q: bad vsock port", addr)
		}
		return vsock.Listen(uint32(p), nil)
	}
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return nil, fmt.Errorf("unsupported --listen %q (want unix:PATH, vsock:PORT or serial:DEVICE)", addr)
	}
	// A socket left by a previous run of this sandbox would make bind fail.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return net.Listen("unix", path)
}

// initPID1 does what an init would: a microVM boots straight into the agent.
// In a container these mounts already exist and nothing happens. In a
// microVM it returns the workload cgroup (nil if the kernel has none).
func initPID1(log *slog.Logger) *os.File {
	if _, err := os.Stat("/proc/self"); err != nil {
		os.MkdirAll("/proc", 0o555)
		if err := syscall.Mount("proc", "/proc", "proc", 0, ""); err != nil {
			log.Warn("mount /proc", slog.Any("err", err))
		}
	}
	mountDevpts(log)
	if cmdline, _ := os.ReadFile("/proc/cmdline"); strings.Contains(string(cmdline), "aether.listen=") {
		// A microVM's stop is a power-off: flush the page cache every
		// second so at most the last second of writes can be lost.
		go func() {
			for range time.Tick(time.Second) {
				syscall.Sync()
			}
		}()
		cg, err := workloadCgroup()
		if err != nil {
			log.Warn("no workload memory limit", slog.Any("err", err))
		}
		return cg
	}
	return nil
}

// mountDevpts gives a microVM the pseudo-terminals the pty operation opens
// (a container has them already).
func mountDevpts(log *slog.Logger) {
	if _, err := os.Stat("/dev/pts/ptmx"); err == nil {
		return
	}
	os.MkdirAll("/dev/pts", 0o755)
	if err := syscall.Mount("devpts", "/dev/pts", "devpts", syscall.MS_NOSUID|syscall.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		log.Warn("mount /dev/pts: no terminals", slog.Any("err", err))
		return
	}
	if _, err := os.Lstat("/dev/ptmx"); err != nil {
		os.Symlink("pts/ptmx", "/dev/ptmx")
	}
}

// agentReserveMiB is the memory a microVM keeps back from workloads for the
// kernel and the agent: without it a workload that exhausts memory can make
// the agent's own allocations fail, and the VM dies with its init.
const agentReserveMiB = 32

// workloadCgroup makes the cgroup v2 group commands run in, limited to the
// guest's memory minus agentReserveMiB.
func workloadCgroup() (*os.File, error) {
	const root = "/sys/fs/cgroup"
	if _, err := os.Stat(root + "/cgroup.controllers"); err != nil {
		if err := syscall.Mount("cgroup2", root, "cgroup2", 0, ""); err != nil {
			return nil, fmt.Errorf("mount cgroup2: %w", err)
		}
	}
	if err := os.WriteFile(root+"/cgroup.subtree_control", []byte("+memory"), 0); err != nil {
		return nil, fmt.Errorf("enable the memory controller: %w", err)
	}
	dir := root + "/workload"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	total, err := memTotalMiB()
	if err != nil {
		return nil, err
	}
	limit := max(total-agentReserveMiB, total/2)
	if err := os.WriteFile(dir+"/memory.max", []byte(strconv.Itoa(limit)+"M"), 0); err != nil {
		return nil, err
	}
	os.WriteFile(dir+"/memory.swap.max", []byte("0"), 0)
	return os.Open(dir)
}

func memTotalMiB() (int, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.Atoi(f[1])
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
