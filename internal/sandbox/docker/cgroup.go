package docker

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/agentproto"
)

// Workload pids groups (cgroup v1 hosts). The agent is PID 1 of its
// container; if the workload shared the container's pids limit, a fork
// bomb holding every pid would leave the agent unable to create a thread:
// it could not end the bomb, and the sandbox would be lost. So on a host
// with a cgroup v1 pids hierarchy each sandbox gets a pids group of its own
// (pidsV1Root/aetherium/<id>, made by aetherd) with PidsLimit − reserve
// pids; the agent forks every command from one thread (agent.forker), which
// aetherd moves into the group after each handshake (AdoptAgent). No tasks
// file is inside the container: a root workload that could write one could
// move the agent's threads into the group it fills. The container's own
// pids cgroup, where only the agent runs, is limited to the reserve.
// Together a sandbox never holds more than PidsLimit.
//
// On cgroup v2 the container's cgroup is all Docker gives (a private
// cgroup namespace, mounted read-only); there the workload shares the
// container's limit as before, and Delete's kill fallback still ends a bomb.
const (
	pidsV1Root      = "/sys/fs/cgroup/pids"
	agentPidsBudget = 256 // the agent's share of PidsLimit (at most a quarter)
)

// hasPidsV1 reports whether this host has a cgroup v1 pids hierarchy that
// aetherd may make groups in.
func hasPidsV1() bool {
	var st unix.Statfs_t
	if err := unix.Statfs(pidsV1Root, &st); err != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
		return false
	}
	_, err := os.Stat(filepath.Join(pidsV1Root, "tasks"))
	return err == nil
}

// pidsSplit divides a sandbox's pids limit between the agent (the
// container's cgroup) and the workload group.
func pidsSplit(limit int64) (agent, workload int64) {
	agent = min(agentPidsBudget, limit/4)
	return agent, limit - agent
}

// workloadGroup is the host directory of a sandbox's workload pids group;
// "" when this runtime makes none.
func (r *Runtime) workloadGroup(id string) string {
	if !r.pidsGroups {
		return ""
	}
	return filepath.Join(pidsV1Root, "aetherium", id)
}

// ensureWorkloadGroup makes (or finds) a sandbox's workload pids group with
// its limit. Start calls it too: after a host reboot the group is gone and
// the container's bind mount needs it.
func (r *Runtime) ensureWorkloadGroup(id string) error {
	dir := r.workloadGroup(id)
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("docker: workload pids group: %w", err)
	}
	_, max := pidsSplit(r.cfg.PidsLimit)
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.FormatInt(max, 10)), 0); err != nil {
		return fmt.Errorf("docker: workload pids group: %w", err)
	}
	return nil
}

// AdoptAgent implements sandbox.AgentAdopter. First, for every connection,
// it checks that the process listening at the other end of conn
// (SO_PEERCRED) is the sandbox's agent: in the sandbox's container and the
// init of a pid namespace of its own (the container's PID 1, as the agent
// is), and still that very process (pinned by a pidfd) once /proc was read
// by its pid. A root workload can put a socket of its own at the agent's
// path (its directory is the workload's to write) and relay the host's
// connection; since idle connections close (docker.agent_idle), the host
// connects often. Then it moves the agent's forking thread
// (hello.ForkerTID, in the container's pid namespace) into the sandbox's
// workload pids group: never that process's main thread; nothing while a
// thread of it is in the group already (this process's earlier
// handshake adopted it; a dormant agent started again is a new program
// with new threads, adopted anew); and the thread is checked to be the
// same after the move. An agent that reports no thread (one of before the
// host moved it) has nothing moved.
func (r *Runtime) AdoptAgent(ctx context.Context, id string, conn net.Conn, hello agentproto.Hello) error {
	pid, err := peerPID(conn)
	if err != nil {
		return fmt.Errorf("docker: sandbox %s: the agent's process: %w", id, err)
	}
	pin, err := pinPeer(conn, pid)
	if err != nil {
		return fmt.Errorf("docker: sandbox %s: the agent's process: %w", id, err)
	}
	defer pin.close()
	cid, cached, err := r.containerID(ctx, id)
	if err != nil {
		return err
	}
	agent := agentProcess{pid: pid, container: cid}
	if cached && !agent.inContainer() { // made again behind this process's back
		r.containers.Delete(id)
		if cid, _, err = r.containerID(ctx, id); err != nil {
			return err
		}
		agent.container = cid
	}
	if err := agent.isInit(); err != nil {
		return fmt.Errorf("docker: sandbox %s: the process answering on its agent socket is not its agent: %w", id, err)
	}
	group := r.workloadGroup(id)
	if group == "" || hello.ForkerTID == 0 {
		if !pin.alive() {
			return fmt.Errorf("docker: sandbox %s: the agent's process %d ended during its adoption", id, pid)
		}
		return nil
	}
	if adopted, err := agent.threadIn(group); err != nil || adopted {
		return err
	}
	tid, err := agent.hostThread(hello.ForkerTID) // isInit accepted it above; the pin's check below covers both
	if err != nil {
		return fmt.Errorf("docker: sandbox %s: %w", id, err)
	}
	// The checks read /proc by number: they were about the peer only if it
	// lives still (a pid is never reused while its process lives).
	if !pin.alive() {
		return fmt.Errorf("docker: sandbox %s: the agent's process %d ended during its adoption", id, pid)
	}
	if err := os.WriteFile(filepath.Join(group, "tasks"), []byte(strconv.Itoa(tid)), 0); err != nil {
		return fmt.Errorf("docker: sandbox %s: move the agent's forking thread into its workload group: %w", id, err)
	}
	if again, err := agent.thread(hello.ForkerTID); err != nil || again != tid {
		return fmt.Errorf("docker: sandbox %s: the agent's forking thread %d ended while it was moved", id, hello.ForkerTID)
	}
	return nil
}

// containerID returns the full id of sandbox id's container, from the
// create or an earlier inspection when there was one (cached). An
// inspection also warns about a container made by an older aetherd, whose
// workload can write its pids group's tasks file, bind-mounted in.
func (r *Runtime) containerID(ctx context.Context, id string) (cid string, cached bool, err error) {
	if v, ok := r.containers.Load(id); ok {
		return v.(string), true, nil
	}
	c, err := r.cli.ContainerInspect(ctx, containerName(id))
	if err != nil {
		return "", false, r.mapErr(err, id)
	}
	if c.HostConfig != nil && slices.ContainsFunc(c.HostConfig.Binds, func(b string) bool { return strings.Contains(b, ":/.aether/workload-tasks") }) {
		r.cfg.Logger.WarnContext(ctx, "docker: sandbox made by an older aetherd: its workload can write its pids group's tasks file (bind-mounted in); recreate it",
			slog.String("sandbox_id", id))
	}
	r.containers.Store(id, c.ID)
	return c.ID, false, nil
}

// peerPID returns the pid, in aetherd's pid namespace, of the process that
// listens at the other end of a unix socket connection.
func peerPID(conn net.Conn) (int, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("%T is not a unix socket", conn)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	cerr := rc.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err = errors.Join(cerr, err); err != nil {
		return 0, err
	}
	if cred.Pid <= 0 {
		return 0, errors.New("no peer process (outside aetherd's pid namespace)")
	}
	return int(cred.Pid), nil
}

// processPin is a pidfd of a process, or -1 where the kernel makes none
// (before Linux 5.3); it tells whether that very process still lives.
type processPin int

// pinPeer pins the process listening at the other end of conn: the socket's
// own pidfd of it (SO_PEERPIDFD, Linux 6.5), which names that process even
// if it has ended and its pid gone to another; on older kernels a pidfd of
// pid, its peer credentials' pid, opened now.
func pinPeer(conn net.Conn, pid int) (processPin, error) {
	if uc, ok := conn.(*net.UnixConn); ok {
		if rc, err := uc.SyscallConn(); err == nil {
			fd, serr := -1, error(nil)
			if rc.Control(func(s uintptr) { fd, serr = unix.GetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_PEERPIDFD) }) == nil {
				switch {
				case serr == nil:
					return processPin(fd), nil
				case !errors.Is(serr, unix.ENOPROTOOPT): // the kernel knows the option: the peer has ended
					return -1, fmt.Errorf("the process at the other end: %w", serr)
				}
			}
		}
	}
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
		return -1, nil // no pidfds here (before Linux 5.3, a seccomp filter)
	case pidGone(err):
		return -1, fmt.Errorf("process %d has ended", pid)
	case err != nil:
		return -1, fmt.Errorf("pin process %d: %w", pid, err)
	}
	return processPin(fd), nil
}

// pidGone reports whether pidfd_open's err says the pid names no process
// now: none (ESRCH), or a thread of another (EINVAL; ENOENT from Linux
// 6.15).
func pidGone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT)
}

// alive reports whether the pinned process lives (true without a pin): its
// pidfd turns readable when it exits, which needs no permission to signal
// it.
func (p processPin) alive() bool {
	if p < 0 {
		return true
	}
	fds := []unix.PollFd{{Fd: int32(p), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

func (p processPin) close() {
	if p >= 0 {
		unix.Close(int(p))
	}
}

// agentProcess is the process answering on a sandbox's agent socket, by
// host pid, and the container it must be in.
type agentProcess struct {
	pid       int
	container string // the container's full id, which its cgroup paths carry
}

// inContainer reports whether the process is in the container: one of its
// cgroup paths has the container's full id as a part of its own (cgroupfs:
// /docker/<id>; systemd: docker-<id>.scope).
func (a agentProcess) inContainer() bool {
	if len(a.container) != 64 {
		return false
	}
	for _, path := range cgroupLines(fmt.Sprintf("/proc/%d/cgroup", a.pid)) {
		for part := range strings.SplitSeq(path, "/") {
			if part == a.container || part == "docker-"+a.container+".scope" {
				return true
			}
		}
	}
	return false
}

// cgroupLines yields the controllers and the path of each line
// (id:controllers:path) of a /proc cgroup file; nothing if it is gone.
func cgroupLines(file string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		b, err := os.ReadFile(file)
		if err != nil {
			return
		}
		for line := range strings.Lines(string(b)) {
			parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
			if len(parts) == 3 && !yield(parts[1], parts[2]) {
				return
			}
		}
	}
}

// thread returns the host id of the process's thread whose id in its pid
// namespace is nsTID, refusing its main thread, a process that is not in
// the container (the pid was reused), and one that is not the init of a pid
// namespace of its own (the agent is its container's PID 1; a pid is only a
// process's, not one of its threads').
func (a agentProcess) thread(nsTID int) (int, error) {
	if err := a.isInit(); err != nil {
		return 0, err
	}
	return a.hostThread(nsTID)
}

// hostThread is thread for a process isInit has just accepted.
func (a agentProcess) hostThread(nsTID int) (int, error) {
	tid, err := hostTID(a.pid, nsTID)
	if err == nil && tid == a.pid {
		err = fmt.Errorf("thread %d is the agent's main thread", nsTID)
	}
	return tid, err
}

// isInit checks that the process is in the sandbox's container and its
// PID 1.
func (a agentProcess) isInit() error {
	if !a.inContainer() {
		return fmt.Errorf("process %d is not in the sandbox's container", a.pid)
	}
	return nsInit(a.pid)
}

// threadIn reports whether a thread of the agent is in group already.
func (a agentProcess) threadIn(group string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(group, "tasks"))
	if err != nil {
		return false, fmt.Errorf("docker: workload pids group: %w", err)
	}
	for _, f := range strings.Fields(string(b)) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%s", a.pid, f)); err == nil {
			return true, nil
		}
	}
	return false, nil
}

// nsInit checks that pid is a process (not another process's thread: a
// peer's pid may have been reused as one) and PID 1 of a pid namespace of
// its own, as the agent is in its container.
func nsInit(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return fmt.Errorf("the agent's process: %w", err)
	}
	if !statusOfNSInit(string(b), pid) {
		return fmt.Errorf("process %d is not the init of a pid namespace of its own, as the agent is", pid)
	}
	return nil
}

// statusOfNSInit reports whether a /proc/<pid>/status text is that of the
// process pid itself (Tgid) and of PID 1 of a pid namespace below the
// host's (NSpid: pid ... 1).
func statusOfNSInit(status string, pid int) bool {
	tgid, nspid := false, false
	for line := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			tgid = strings.TrimSpace(v) == strconv.Itoa(pid)
		}
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(v)
			nspid = len(f) > 1 && f[0] == strconv.Itoa(pid) && f[len(f)-1] == "1"
		}
	}
	return tgid && nspid
}

// hostTID returns the host id of the thread of process pid whose id in
// the process's innermost pid namespace is nsTID; the process must be in a
// pid namespace of its own (NSpid has two ids or more).
func hostTID(pid, nsTID int) (int, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("the agent's threads: %w", err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			continue // ended meanwhile
		}
		for line := range strings.Lines(string(b)) {
			ids, ok := strings.CutPrefix(line, "NSpid:")
			if f := strings.Fields(ids); ok && len(f) > 1 && f[0] == e.Name() && f[len(f)-1] == strconv.Itoa(nsTID) {
				return strconv.Atoi(e.Name())
			}
		}
	}
	return 0, fmt.Errorf("the agent (pid %d) has no thread %d in its pid namespace", pid, nsTID)
}

// removeWorkloadGroup kills what is left in a sandbox's workload group and
// removes it. It is idempotent.
func (r *Runtime) removeWorkloadGroup(id string) error {
	dir := r.workloadGroup(id)
	if dir == "" {
		return nil
	}
	var err error
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		killGroup(dir)
		if err = unix.Rmdir(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("docker: remove workload pids group %s: %w", dir, err)
		}
	}
}

// killGroup SIGKILLs every process of a cgroup v1 pids group, over and
// over until it is empty (a fork bomb refills it while it is being killed)
// or 5 s pass. The host does this when dockerd's own kill does not end a
// container.
func killGroup(dir string) {
	group := strings.TrimPrefix(dir, pidsV1Root)
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil || len(strings.TrimSpace(string(b))) == 0 {
			return
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				killIn(pid, group)
			}
		}
		time.Sleep(time.Millisecond) // what is listed may be dying already
	}
}

// killIn SIGKILLs process pid if a thread of it is in the pids group group
// (a path below the hierarchy's root): the group's list names a process for any thread of it inside, as the agent's
// forking thread is (killing the agent, its container's init, ends every
// process of the container). A pid read from the list may have been reaped
// and given to another process since (a fork bomb goes through this host's
// pids fast): the process is pinned by a pidfd first, then checked, so one
// that is not the group's is never signalled. Without pidfds (Linux before
// 5.3, a seccomp filter, no fds left) it is checked and signalled by
// number.
func killIn(pid int, group string) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case pidGone(err):
		return
	case err != nil:
		if threadInGroup(pid, group) {
			unix.Kill(pid, unix.SIGKILL)
		}
		return
	}
	defer unix.Close(fd)
	if threadInGroup(pid, group) {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// threadInGroup reports whether a thread of process pid is in the cgroup v1
// pids group group.
func threadInGroup(pid int, group string) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if pidsGroupIn(fmt.Sprintf("/proc/%d/task/%s/cgroup", pid, t.Name())) == group {
			return true
		}
	}
	return false
}

// pidsGroupIn returns the cgroup v1 pids group a /proc cgroup file names
// ("" if none, or the file is gone).
func pidsGroupIn(file string) string {
	for controllers, path := range cgroupLines(file) {
		if slices.Contains(strings.Split(controllers, ","), "pids") { // it may share its hierarchy
			return path
		}
	}
	return ""
}

// pruneAge spares the groups of creates still under way (the group is made
// before its container), in this process or another aetherd's.
const pruneAge = 2 * time.Minute

// pruneWorkloadGroups removes the workload groups of sandboxes that have no
// container on this Docker host any more (any owner's: the groups are shared
// by every aetherd here). A crash, or a container removed behind aetherd's
// back, leaves one. Create calls it once per process.
func (r *Runtime) pruneWorkloadGroups(ctx context.Context) error {
	if !r.pidsGroups {
		return nil
	}
	cs, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelManaged+"=true"))})
	if err != nil {
		return r.mapErr(err, "")
	}
	live := map[string]bool{}
	for _, c := range cs {
		live[c.Labels[LabelSandbox]] = true
	}
	root := filepath.Join(pidsV1Root, "aetherium")
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil // none made yet
	}
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		if !e.IsDir() || live[e.Name()] || err != nil || time.Since(info.ModTime()) < pruneAge {
			continue
		}
		killGroup(filepath.Join(root, e.Name()))
		if err := unix.Rmdir(filepath.Join(root, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
