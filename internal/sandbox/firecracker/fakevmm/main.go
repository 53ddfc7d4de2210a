// Command fakevmm stands in for the firecracker binary in tests on hosts
// where Firecracker cannot run (no binary can be obtained here, and KVM is
// PVM-only). It is a FAKE: it boots nothing. It serves the subset of the
// Firecracker API the runtime uses on --api-sock, refuses to start before
// boot source, root drive, machine config and vsock are set or when a file
// they name is missing, writes a line to the logger fifo, and after
// InstanceStart speaks the hybrid-vsock handshake on uds_path, serving the
// real agent protocol (running commands on the host) on port 1024. A NIC's
// TAP must exist; the configuration it started with is written to
// fakevmm-config.json in its working directory.
//
// What it proves: the runtime's process lifecycle, API sequence, paths,
// fifos and vsock dialing. What it cannot: a guest boot (see the
// FIRECRACKER_BIN-gated conformance test).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/aetherium/aetherium/internal/agent"
)

type vmm struct {
	id string

	mu      sync.Mutex
	state   string // Not started, Running, Paused
	set     map[string]json.RawMessage
	udsPath string
}

func main() {
	if filepath.Base(os.Args[0]) == "jailer" {
		jail(os.Args[1:])
		return
	}
	apiSock := flag.String("api-sock", "", "API socket")
	id := flag.String("id", "", "instance ID")
	flag.Parse()
	l, err := net.Listen("unix", *apiSock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakevmm:", err)
		os.Exit(1)
	}
	fmt.Println("fakevmm: API on", *apiSock)
	v := &vmm{id: *id, state: "Not started", set: map[string]json.RawMessage{}}
	http.Serve(l, v)
}

func (v *vmm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.Method == http.MethodGet && r.URL.Path == "/" {
		json.NewEncoder(w).Encode(map[string]string{"app_name": "Firecracker", "id": v.id, "state": v.state, "vmm_version": "fake"})
		return
	}
	var body map[string]any
	raw := json.RawMessage{}
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil || json.Unmarshal(raw, &body) != nil {
		fault(w, "bad body")
		return
	}
	key := r.Method + " " + r.URL.Path
	switch {
	case key == "PUT /actions" && body["action_type"] == "InstanceStart":
		if err := v.start(); err != nil {
			fault(w, err.Error())
			return
		}
	case key == "PATCH /vm":
		if v.state == "Not started" {
			fault(w, "not started")
			return
		}
		v.state = map[string]string{"Paused": "Paused", "Resumed": "Running"}[body["state"].(string)]
	case key == "PUT /logger":
		if err := logLine(body["log_path"].(string)); err != nil {
			fault(w, err.Error())
			return
		}
	}
	v.set[r.URL.Path] = raw
	w.WriteHeader(http.StatusNoContent)
}

// start checks the configuration like Firecracker would and opens the
// hybrid-vsock socket.
func (v *vmm) start() error {
	for _, need := range []string{"/boot-source", "/drives/rootfs", "/machine-config", "/vsock"} {
		if v.set[need] == nil {
			return fmt.Errorf("%s not configured", need)
		}
	}
	var boot struct {
		Kernel string `json:"kernel_image_path"`
		Initrd string `json:"initrd_path"`
	}
	var drive struct {
		Path string `json:"path_on_host"`
	}
	var vs struct {
		UDSPath string `json:"uds_path"`
	}
	json.Unmarshal(v.set["/boot-source"], &boot)
	json.Unmarshal(v.set["/drives/rootfs"], &drive)
	json.Unmarshal(v.set["/vsock"], &vs)
	for _, f := range []string{boot.Kernel, boot.Initrd} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("cannot open %q: %v", f, err)
		}
	}
	f, err := os.OpenFile(drive.Path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cannot open drive %q read-write: %v", drive.Path, err)
	}
	f.Close()
	l, err := net.Listen("unix", vs.UDSPath)
	if err != nil {
		return err
	}
	if raw := v.set["/network-interfaces/eth0"]; raw != nil {
		var nic struct {
			HostDevName string `json:"host_dev_name"`
		}
		json.Unmarshal(raw, &nic)
		if _, err := os.Stat("/sys/class/net/" + nic.HostDevName); err != nil {
			return fmt.Errorf("open tap %q: %v", nic.HostDevName, err)
		}
	}
	// What it was configured with, for the tests to check.
	b, _ := json.Marshal(v.set)
	os.WriteFile("fakevmm-config.json", b, 0o644)
	v.state = "Running"
	fmt.Println("fakevmm: guest console: aether-init: starting agent (vsock:1024)")
	go serveVsock(l)
	return nil
}

// serveVsock answers "CONNECT 1024" with "OK <port>" and then serves the
// agent protocol; other ports are refused by closing, like Firecracker.
func serveVsock(l net.Listener) {
	srv := agent.New(agent.Config{Version: "fakevmm"})
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			line, err := bufio.NewReader(&oneByte{conn}).ReadString('\n')
			if err != nil || strings.TrimSpace(line) != "CONNECT 1024" {
				conn.Close()
				return
			}
			fmt.Fprintf(conn, "OK 1073741824\n")
			srv.ServeConn(context.Background(), conn)
		}()
	}
}

// oneByte reads one byte at a time so the handshake line is consumed
// exactly and agent frames stay in the connection.
type oneByte struct{ c net.Conn }

func (o *oneByte) Read(p []byte) (int, error) { return o.c.Read(p[:1]) }

func logLine(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, "fakevmm: logger configured")
	return err
}

func fault(w http.ResponseWriter, msg string) {
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"fault_message": msg})
}

// jail does, when this binary is run as "jailer", what the real jailer does
// that the runtime relies on: make <chroot base>/<exec file name>/<id>/root,
// copy the exec file into it, hand the directory to uid:gid, chroot, drop
// to uid:gid and exec the copy with --id and the arguments after "--". (No
// device nodes, cgroups or namespaces: the fake VMM opens none.)
func jail(args []string) {
	fs := flag.NewFlagSet("jailer", flag.ExitOnError)
	id := fs.String("id", "", "")
	execFile := fs.String("exec-file", "", "")
	uid := fs.Int("uid", -1, "")
	gid := fs.Int("gid", -1, "")
	base := fs.String("chroot-base-dir", "/srv/jailer", "")
	fs.String("cgroup-version", "1", "")
	fs.String("netns", "", "")
	fs.Bool("daemonize", false, "")
	fs.Func("cgroup", "", func(string) error { return nil })
	fs.Parse(args)
	name := filepath.Base(*execFile)
	root := filepath.Join(*base, name, *id, "root")
	die := func(err error) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake jailer:", err)
			os.Exit(1)
		}
	}
	die(os.MkdirAll(root, 0o755))
	b, err := os.ReadFile(*execFile)
	die(err)
	die(os.WriteFile(filepath.Join(root, name), b, 0o755))
	die(os.Chown(root, *uid, *gid))
	die(syscall.Chroot(root))
	die(os.Chdir("/"))
	die(syscall.Setgid(*gid))
	die(syscall.Setuid(*uid))
	die(syscall.Exec("/"+name, append([]string{name, "--id", *id}, fs.Args()...), nil))
}
