// Package sandbox defines what the worker needs from an isolation runtime
// (Runtime) and the runtime-independent layer above it: connecting to a
// sandbox's agent, which is also how readiness is decided.
//
// Runtimes live in sandbox/docker, sandbox/qemu and sandbox/firecracker; each
// passes sandboxtest.Run.
package sandbox

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/egress"
)

// Runtime produces and destroys isolated machines and hands the host a byte
// stream to each machine's agent. Everything else (exec, files, readiness) is
// done over that stream by package agentclient.
//
// Sandboxes are named by the caller's ID (the store's VM ID). Implementations
// are safe for concurrent use, and mark what they create so that List finds
// it again after a crash of the daemon.
type Runtime interface {
	// Create creates and starts a sandbox for spec. It is idempotent by
	// spec.ID: if that sandbox exists, it is started if needed and returned.
	// Errors: ErrFailedPrecondition when the image is missing,
	// ErrInvalidArgument for a spec the runtime cannot satisfy.
	Create(ctx context.Context, spec *Spec) (*Info, error)
	// Start starts a stopped sandbox. Starting a running one does nothing.
	Start(ctx context.Context, id string) error
	// Stop stops a sandbox, keeping its disk. Stopping a stopped one does nothing.
	Stop(ctx context.Context, id string) error
	// Delete destroys a sandbox and everything the runtime made for it. It is
	// idempotent: deleting a missing sandbox returns nil.
	Delete(ctx context.Context, id string) error
	// Inspect returns a sandbox's current state, or ErrNotFound.
	Inspect(ctx context.Context, id string) (*Info, error)
	// List returns every sandbox this runtime instance owns, including ones
	// the store no longer knows (orphans after a crash).
	List(ctx context.Context) ([]*Info, error)
	// Dial opens a new byte stream to the sandbox's agent. It fails fast when
	// the agent is not listening yet; callers retry (see Connect).
	Dial(ctx context.Context, id string) (net.Conn, error)
	// Health reports whether the runtime can create sandboxes right now.
	Health(ctx context.Context) error
}

// Spec describes a sandbox to create.
type Spec struct {
	// ID names the sandbox; it is the store's VM ID.
	ID string
	// Name is the user's name for it, used in labels and hostnames.
	Name string
	// Image is the runtime-specific image reference.
	Image string
	// VCPUs is the CPU limit in cores; 0 means 1.
	VCPUs int
	// MemoryMB is the memory limit; the workload is killed beyond it. 0 means 512.
	MemoryMB int
	// Egress is what the sandbox may connect to; the zero Policy means
	// internet (the public internet only). Runtimes enforce it for the
	// sandbox's life, restarts included.
	Egress egress.Policy
}

// Hostname is the machine's hostname: the sandbox's name when it is a valid
// hostname (user names are DNS labels; pool sandboxes' "_pool-…" are not),
// else one derived from the ID.
func (s *Spec) Hostname() string {
	if s.Name != "" && len(s.Name) <= 63 && !strings.HasPrefix(s.Name, "_") {
		return s.Name
	}
	return "sandbox-" + s.ID[:min(8, len(s.ID))]
}

// States reported in Info.State.
const (
	StateRunning = "running"
	StateStopped = "stopped"
	StatePaused  = "paused"
	StateCreated = "created"
)

// Info is a sandbox as the runtime sees it.
type Info struct {
	// ID is the Spec.ID the sandbox was created with.
	ID string
	// RuntimeID is the runtime's own handle (container ID, VM PID…).
	RuntimeID string
	State     string
	Image     string
	CreatedAt time.Time
	// Address is the sandbox's IP address on its network; empty without one.
	Address string
}

// Committer is a runtime that can save a sandbox's filesystem as a new image
// (templates, snapshots). Found with a type assertion on a Runtime.
type Committer interface {
	// Commit writes the sandbox's current filesystem to the image ref and
	// returns the image's ID. The sandbox keeps running. Callers run `sync`
	// in a running sandbox first: a microVM's disk does not see what is
	// still in the guest's page cache.
	Commit(ctx context.Context, id, ref string) (string, error)
}

// AgentAdopter is a runtime with host-side work to do for each agent
// session once its handshake answered, before the session is used: the
// Docker runtime moves the agent's forking thread into the sandbox's
// workload pids group (agentproto.Hello.ForkerTID). Connect calls it after
// every handshake, with the connection it made (whose peer is the process
// that answered). Found with a type assertion on a Runtime.
type AgentAdopter interface {
	AdoptAgent(ctx context.Context, id string, conn net.Conn, hello agentproto.Hello) error
}

// AgentIdler is a runtime whose agents do better without a connection they
// do not use: the Docker runtime's go dormant once the host lets go (see
// cmd/aether-waiter), so an idle sandbox costs the host what a container of
// `sleep` does. Agents closes connections unused for AgentIdle. Found with a
// type assertion on a Runtime.
type AgentIdler interface {
	// AgentIdle is how long an agent connection no operation uses stays
	// open; zero keeps it (with its keepalive pings) for good.
	AgentIdle() time.Duration
}

// ImageRemover is a runtime that can delete an image it made (deleting a
// template). Found with a type assertion on a Runtime.
type ImageRemover interface {
	// RemoveImage deletes ref; a missing image is not an error.
	RemoveImage(ctx context.Context, ref string) error
}

// Pauser is a runtime that can freeze a sandbox's processes and thaw them.
// Found with a type assertion on a Runtime.
type Pauser interface {
	// Pause freezes every process in the sandbox; memory is kept.
	Pause(ctx context.Context, id string) error
	// Resume thaws a paused sandbox.
	Resume(ctx context.Context, id string) error
}

// ConsoleLogger is a runtime that keeps each sandbox's console output (a
// microVM's serial console), for debugging a failed boot. Found with a type
// assertion on a Runtime.
type ConsoleLogger interface {
	// ConsoleLog returns at most the last maxBytes of the console.
	ConsoleLog(ctx context.Context, id string, maxBytes int) ([]byte, error)
}

// ConsoleTrimmer is a ConsoleLogger whose logs the guest can grow: the
// worker calls TrimConsoles every second so each log stays a capped ring,
// whatever the guest writes to its console. Found with a type assertion.
type ConsoleTrimmer interface {
	// TrimConsoles drops all but the tail of every sandbox's console log.
	// It is safe while the machines run and cheap when nothing grew.
	TrimConsoles(ctx context.Context) error
}

// DiskWatcher is a runtime whose sandboxes can write more than their disk
// limit (Docker where the storage driver has no quota). The worker asks it
// on every reconcile and fails the sandboxes over their limit. Found with a
// type assertion.
type DiskWatcher interface {
	// DiskOverruns returns this runtime's running sandboxes that wrote more
	// than their limit. Its cost is one size walk of each running
	// sandbox's writable layer.
	DiskOverruns(ctx context.Context) ([]DiskOverrun, error)
}

// DiskOverrun is a sandbox over its disk limit.
type DiskOverrun struct {
	ID      string
	UsedMB  int64
	LimitMB int64
}
