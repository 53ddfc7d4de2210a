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
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

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
	fs := flag.NewFlagSet("aether-agent", flag.ContinueOnError)
	listen := fs.String("listen", "unix:/run/aether/agent.sock", "where to serve: unix:PATH")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version)
		return nil
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if os.Getpid() == 1 {
		initPID1(log)
	}
	l, err := listenOn(*listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv := agent.New(agent.Config{Version: version, Logger: log})
	log.Info("agent serving", slog.String("listen", *listen), slog.String("version", version))
	return srv.Serve(ctx, l)
}

func listenOn(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return nil, fmt.Errorf("unsupported --listen %q (want unix:PATH)", addr)
	}
	// A socket left by a previous run of this sandbox would make bind fail.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return net.Listen("unix", path)
}

// initPID1 does what an init would: a microVM boots straight into the agent.
// In a container these mounts already exist and nothing happens.
func initPID1(log *slog.Logger) {
	if _, err := os.Stat("/proc/self"); err != nil {
		os.MkdirAll("/proc", 0o555)
		if err := syscall.Mount("proc", "/proc", "proc", 0, ""); err != nil {
			log.Warn("mount /proc", slog.Any("err", err))
		}
	}
}
