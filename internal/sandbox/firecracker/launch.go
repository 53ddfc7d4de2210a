package firecracker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/aetherium/aetherium/internal/network"
	"github.com/aetherium/aetherium/internal/sandbox"
	"github.com/aetherium/aetherium/internal/sandbox/microvm"
)

// launch starts a Firecracker process for the sandbox, configures the
// microVM through the API socket and boots it. On failure the process is
// killed and the console's tail is in the error.
func (r *Runtime) launch(ctx context.Context, m *microvm.Meta, ep *network.Endpoint) error {
	cmd, err := r.spawn(m)
	if err != nil {
		return err
	}
	if err := r.configure(ctx, m, ep); err != nil {
		cmd.Process.Kill()
		r.stopDrains(m.ID)
		out, _ := r.dirs.Console(m.ID, 2048)
		return fmt.Errorf("firecracker: boot sandbox %s: %w\n%s", m.ID, err, out)
	}
	return nil
}

// spawn starts the VMM (through the jailer when jailed) in a session of its
// own, so it outlives aetherd; its standard output, the guest's serial
// console, goes to console.log.
func (r *Runtime) spawn(m *microvm.Meta) (*exec.Cmd, error) {
	dir, root := r.dirs.Dir(m.ID), r.root(m)
	for _, stale := range []string{"api.sock", "v.sock"} {
		os.Remove(filepath.Join(root, stale))
	}
	for _, fifo := range []string{"log.fifo", "metrics.fifo"} {
		if err := mkfifo(filepath.Join(root, fifo), m, r.jailUID(m), r.cfg.GID); err != nil {
			return nil, err
		}
	}
	if m.Jailed { // the uid follows the CID, which a relaunch may change
		if err := os.Chown(filepath.Join(root, "rootfs.ext4"), r.jailUID(m), r.cfg.GID); err != nil {
			return nil, err
		}
	}
	var cmd *exec.Cmd
	if m.Jailed {
		// A relaunch reuses the chroot; the jailer makes /dev and its copy
		// of firecracker anew.
		os.RemoveAll(filepath.Join(root, "dev"))
		os.Remove(filepath.Join(root, filepath.Base(r.cfg.Binary)))
		cmd = exec.Command(r.cfg.Jailer, r.jail(m).Args("/api.sock")...)
	} else {
		cmd = exec.Command(r.cfg.Binary, "--api-sock", "api.sock", "--id", m.ID)
		cmd.Dir = root
	}
	console, err := os.OpenFile(filepath.Join(dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer console.Close()
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("firecracker: start: %w", err)
	}
	go cmd.Wait() // reap it if it ends while aetherd runs
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	r.startDrains(m)
	return cmd, nil
}

func mkfifo(path string, m *microvm.Meta, uid, gid int) error {
	if st, err := os.Stat(path); err == nil && st.Mode()&os.ModeNamedPipe != 0 {
		if m.Jailed {
			return os.Chown(path, uid, gid)
		}
		return nil
	}
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return fmt.Errorf("mkfifo %s: %w", path, err)
	}
	if m.Jailed {
		return os.Chown(path, uid, gid)
	}
	return nil
}

// configure waits for the API socket and sets the microVM up: logger and
// metrics fifos, machine, kernel with the agent's vsock port and the
// guest's address on its command line, root disk, NIC, vsock, then boots.
func (r *Runtime) configure(ctx context.Context, m *microvm.Meta, ep *network.Endpoint) error {
	c := r.client(m)
	if err := waitSocket(ctx, filepath.Join(r.root(m), "api.sock"), 10*time.Second); err != nil {
		return err
	}
	args := fmt.Sprintf("console=ttyS0 reboot=k panic=1 pci=off aether.listen=vsock:%d aether.hostname=%s",
		AgentPort, (&sandbox.Spec{ID: m.ID, Name: m.Name}).Hostname())
	steps := []func() error{
		func() error { return c.PutLogger(ctx, &Logger{LogPath: vmmPath(m, "log.fifo"), Level: "Info"}) },
		func() error { return c.PutMetrics(ctx, &Metrics{MetricsPath: vmmPath(m, "metrics.fifo")}) },
		func() error {
			return c.PutMachineConfig(ctx, &MachineConfig{VCPUCount: m.VCPUs, MemSizeMiB: m.MemoryMB})
		},
		func() error {
			if ep != nil {
				args += " " + ep.KernelArgs()
			}
			return c.PutBootSource(ctx, &BootSource{KernelImagePath: vmmPath(m, "vmlinux"), InitrdPath: vmmPath(m, "initrd.gz"), BootArgs: args})
		},
		func() error {
			return c.PutDrive(ctx, &Drive{DriveID: "rootfs", PathOnHost: vmmPath(m, "rootfs.ext4"), IsRootDevice: false})
		},
		func() error {
			if ep == nil {
				return nil
			}
			return c.PutNetworkInterface(ctx, &NetworkInterface{IfaceID: "eth0", HostDevName: ep.Tap, GuestMAC: ep.MAC.String()})
		},
		func() error { return c.PutVsock(ctx, &Vsock{GuestCID: m.CID, UDSPath: vmmPath(m, "v.sock")}) },
		func() error { return c.Start(ctx) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// waitSocket waits until something accepts connections on a unix socket.
func waitSocket(ctx context.Context, path string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		conn, err := sandbox.DialUnix(ctx, path)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("API socket %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// maxVMMLog caps each file the fifos are copied into.
const maxVMMLog = 8 << 20

// startDrains copies the VMM's log and metrics fifos into firecracker.log
// and metrics.json while aetherd runs. Firecracker opens fifos
// non-blocking, so without a reader it drops lines instead of stalling.
func (r *Runtime) startDrains(m *microvm.Meta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.drains[m.ID] != nil {
		return
	}
	var files []*os.File
	for fifo, dst := range map[string]string{"log.fifo": "firecracker.log", "metrics.fifo": "metrics.json"} {
		// O_RDWR: the read side never sees EOF when the VMM restarts.
		f, err := os.OpenFile(filepath.Join(r.root(m), fifo), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		files = append(files, f)
		go drain(f, filepath.Join(r.dirs.Dir(m.ID), dst))
	}
	r.drains[m.ID] = func() {
		for _, f := range files {
			f.Close()
		}
	}
}

func (r *Runtime) stopDrains(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if stop := r.drains[id]; stop != nil {
		stop()
		delete(r.drains, id)
	}
}

// drain appends what the fifo yields to dst, starting dst over when it
// reaches maxVMMLog.
func drain(fifo *os.File, dst string) {
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer out.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := fifo.Read(buf)
		if n > 0 {
			if st, _ := out.Stat(); st != nil && st.Size()+int64(n) > maxVMMLog {
				out.Truncate(0)
			}
			out.Write(buf[:n])
		}
		if err != nil {
			return // the fifo was closed by stopDrains
		}
	}
}
