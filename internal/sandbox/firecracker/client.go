// Package firecracker is the sandbox.Runtime on Firecracker microVMs: a
// small typed client for the pinned Firecracker API (this file), the jailer's
// command line, the hybrid-vsock dialer that reaches the guest agent, and the
// runtime that ties them together: Firecracker's microvm.VMM (vmm.go) under
// the lifecycle microvm.Machine shares with the QEMU runtime.
//
// The client targets Firecracker v1.16 (the API schema in testdata/ is the
// contract its tests check every request body against). firecracker-go-sdk
// is not used: it is maintenance-only and models Firecracker 1.4.
package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/aetherium/aetherium/internal/sandbox"
)

// APIVersion is the Firecracker release this client is written against.
const APIVersion = "1.16.1"

// BootSource is PUT /boot-source.
type BootSource struct {
	KernelImagePath string `json:"kernel_image_path"`
	BootArgs        string `json:"boot_args,omitempty"`
	InitrdPath      string `json:"initrd_path,omitempty"`
}

// Drive is PUT /drives/{drive_id}.
type Drive struct {
	DriveID      string `json:"drive_id"`
	PathOnHost   string `json:"path_on_host"`
	IsRootDevice bool   `json:"is_root_device"`
	IsReadOnly   bool   `json:"is_read_only"`
	CacheType    string `json:"cache_type,omitempty"`
	IOEngine     string `json:"io_engine,omitempty"`
}

// MachineConfig is PUT /machine-config.
type MachineConfig struct {
	VCPUCount  int  `json:"vcpu_count"`
	MemSizeMiB int  `json:"mem_size_mib"`
	SMT        bool `json:"smt,omitempty"`
	// TrackDirtyPages enables diff snapshots.
	TrackDirtyPages bool `json:"track_dirty_pages,omitempty"`
}

// NetworkInterface is PUT /network-interfaces/{iface_id}.
type NetworkInterface struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac,omitempty"`
}

// Vsock is PUT /vsock: the guest's vsock device, exposed on the host as the
// hybrid-vsock unix socket UDSPath.
type Vsock struct {
	GuestCID uint32 `json:"guest_cid"`
	UDSPath  string `json:"uds_path"`
}

// Logger is PUT /logger.
type Logger struct {
	LogPath       string `json:"log_path"`
	Level         string `json:"level,omitempty"`
	ShowLevel     bool   `json:"show_level,omitempty"`
	ShowLogOrigin bool   `json:"show_log_origin,omitempty"`
}

// Metrics is PUT /metrics.
type Metrics struct {
	MetricsPath string `json:"metrics_path"`
}

// InstanceInfo is GET /.
type InstanceInfo struct {
	AppName    string `json:"app_name"`
	ID         string `json:"id"`
	State      string `json:"state"`
	VMMVersion string `json:"vmm_version"`
}

// InstanceAction is PUT /actions.
type InstanceAction struct {
	ActionType string `json:"action_type"`
}

// Action types.
const (
	ActionInstanceStart  = "InstanceStart"
	ActionSendCtrlAltDel = "SendCtrlAltDel"
)

// VMState is PATCH /vm.
type VMState struct {
	State string `json:"state"`
}

// VM states for PATCH /vm.
const (
	StatePaused  = "Paused"
	StateResumed = "Resumed"
)

// SnapshotCreate is PUT /snapshot/create (the VM must be paused).
type SnapshotCreate struct {
	SnapshotType string `json:"snapshot_type,omitempty"`
	SnapshotPath string `json:"snapshot_path"`
	MemFilePath  string `json:"mem_file_path"`
}

// SnapshotLoad is PUT /snapshot/load (on a fresh Firecracker process).
type SnapshotLoad struct {
	SnapshotPath string `json:"snapshot_path"`
	MemFilePath  string `json:"mem_file_path,omitempty"`
	ResumeVM     bool   `json:"resume_vm,omitempty"`
}

// Client talks to one Firecracker process's API socket. It is safe for
// concurrent use, but Firecracker serializes requests anyway.
type Client struct {
	http *http.Client
}

// NewClient returns a client for the API socket at path.
func NewClient(socketPath string) *Client {
	return &Client{http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return sandbox.DialUnix(ctx, socketPath)
		}},
	}}
}

// APIError is a non-2xx answer; Firecracker explains in fault_message.
type APIError struct {
	Method, Path string
	Status       int
	Fault        string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("firecracker %s %s: %d: %s", e.Method, e.Path, e.Status, e.Fault)
}

func (c *Client) do(ctx context.Context, method, path string, body any) error {
	return c.call(ctx, method, path, body, nil)
}

// call sends body and decodes a 2xx answer into out when out is not nil.
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://firecracker"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("firecracker %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		if out != nil {
			return json.NewDecoder(resp.Body).Decode(out)
		}
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	var fault struct {
		FaultMessage string `json:"fault_message"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &fault) != nil || fault.FaultMessage == "" {
		fault.FaultMessage = string(raw)
	}
	return &APIError{Method: method, Path: path, Status: resp.StatusCode, Fault: fault.FaultMessage}
}

// PutBootSource sets the kernel, initrd and command line.
func (c *Client) PutBootSource(ctx context.Context, b *BootSource) error {
	return c.do(ctx, http.MethodPut, "/boot-source", b)
}

// PutDrive attaches a block device.
func (c *Client) PutDrive(ctx context.Context, d *Drive) error {
	return c.do(ctx, http.MethodPut, "/drives/"+d.DriveID, d)
}

// PutMachineConfig sets vCPUs and memory.
func (c *Client) PutMachineConfig(ctx context.Context, m *MachineConfig) error {
	return c.do(ctx, http.MethodPut, "/machine-config", m)
}

// PutNetworkInterface attaches a TAP device.
func (c *Client) PutNetworkInterface(ctx context.Context, n *NetworkInterface) error {
	return c.do(ctx, http.MethodPut, "/network-interfaces/"+n.IfaceID, n)
}

// PutVsock adds the vsock device.
func (c *Client) PutVsock(ctx context.Context, v *Vsock) error {
	return c.do(ctx, http.MethodPut, "/vsock", v)
}

// PutLogger sets where Firecracker logs (a file or fifo).
func (c *Client) PutLogger(ctx context.Context, l *Logger) error {
	return c.do(ctx, http.MethodPut, "/logger", l)
}

// PutMetrics sets where Firecracker writes metrics (a file or fifo).
func (c *Client) PutMetrics(ctx context.Context, m *Metrics) error {
	return c.do(ctx, http.MethodPut, "/metrics", m)
}

// Start boots the configured microVM.
func (c *Client) Start(ctx context.Context) error {
	return c.do(ctx, http.MethodPut, "/actions", &InstanceAction{ActionType: ActionInstanceStart})
}

// SetState pauses or resumes the microVM.
func (c *Client) SetState(ctx context.Context, state string) error {
	return c.do(ctx, http.MethodPatch, "/vm", &VMState{State: state})
}

// CreateSnapshot writes the paused microVM's state and memory.
func (c *Client) CreateSnapshot(ctx context.Context, s *SnapshotCreate) error {
	return c.do(ctx, http.MethodPut, "/snapshot/create", s)
}

// LoadSnapshot restores a microVM into a fresh Firecracker process.
func (c *Client) LoadSnapshot(ctx context.Context, s *SnapshotLoad) error {
	return c.do(ctx, http.MethodPut, "/snapshot/load", s)
}

// Describe returns the instance's ID, state and version.
func (c *Client) Describe(ctx context.Context) (*InstanceInfo, error) {
	var info InstanceInfo
	if err := c.call(ctx, http.MethodGet, "/", nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}
