package firecracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// swagger is the published Firecracker v1.16.1 API description.
type swagger struct {
	Paths       map[string]map[string]operation `yaml:"paths"`
	Definitions map[string]definition           `yaml:"definitions"`
}

type operation struct {
	Parameters []struct {
		In     string `yaml:"in"`
		Schema struct {
			Ref string `yaml:"$ref"`
		} `yaml:"schema"`
	} `yaml:"parameters"`
}

type definition struct {
	Type       string              `yaml:"type"`
	Required   []string            `yaml:"required"`
	Properties map[string]property `yaml:"properties"`
}

type property struct {
	Type string   `yaml:"type"`
	Ref  string   `yaml:"$ref"`
	Enum []string `yaml:"enum"`
}

func loadSwagger(t *testing.T) *swagger {
	t.Helper()
	raw, err := os.ReadFile("testdata/firecracker-v1.16.1-swagger.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var s swagger
	if err := yaml.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// bodyDefinition finds the definition a request body to method path must match.
func (s *swagger) bodyDefinition(method, path string) (string, error) {
	for tmpl, ops := range s.Paths {
		re := regexp.MustCompile("^" + regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(tmpl, `[^/]+`) + "$")
		if !re.MatchString(path) {
			continue
		}
		op, ok := ops[strings.ToLower(method)]
		if !ok {
			return "", fmt.Errorf("%s %s: method not in the API", method, path)
		}
		for _, p := range op.Parameters {
			if p.In == "body" {
				return strings.TrimPrefix(p.Schema.Ref, "#/definitions/"), nil
			}
		}
		return "", fmt.Errorf("%s %s takes no body", method, path)
	}
	return "", fmt.Errorf("%s: path not in the API", path)
}

// validate checks a JSON body against a definition: required properties
// present, no unknown ones, JSON types and enums as declared.
func (s *swagger) validate(defName string, body []byte) error {
	def, ok := s.Definitions[defName]
	if !ok {
		return fmt.Errorf("no definition %s", defName)
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		return fmt.Errorf("%s: body is not a JSON object: %v", defName, err)
	}
	for _, r := range def.Required {
		if _, ok := obj[r]; !ok {
			return fmt.Errorf("%s: required property %q missing in %s", defName, r, body)
		}
	}
	for k, v := range obj {
		p, ok := def.Properties[k]
		if !ok {
			return fmt.Errorf("%s: unknown property %q", defName, k)
		}
		want := p.Type
		if want == "" && p.Ref != "" {
			want = "object"
			if t := s.Definitions[strings.TrimPrefix(p.Ref, "#/definitions/")].Type; t != "" {
				want = t
			}
		}
		if got := jsonType(v); got != want && !(want == "integer" && got == "number") {
			return fmt.Errorf("%s.%s: %s, want %s", defName, k, got, want)
		}
		if want == "integer" {
			if f := v.(float64); f != float64(int64(f)) {
				return fmt.Errorf("%s.%s: %v is not an integer", defName, k, f)
			}
		}
		if len(p.Enum) > 0 && !contains(p.Enum, fmt.Sprint(v)) {
			return fmt.Errorf("%s.%s: %v not in %v", defName, k, v, p.Enum)
		}
	}
	return nil
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		return "integer"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fakeFirecracker serves the API socket like Firecracker would for requests
// that match the schema. It is a stand-in: no Firecracker binary can be had
// on this machine; with one, the runtime's conformance suite covers the rest.
type fakeFirecracker struct {
	sw   *swagger
	mu   sync.Mutex
	seen []string
	t    *testing.T
}

func (f *fakeFirecracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	def, err := f.sw.bodyDefinition(r.Method, r.URL.Path)
	if err == nil {
		err = f.sw.validate(def, body)
	}
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"fault_message": err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func startFake(t *testing.T) (*Client, *fakeFirecracker) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFirecracker{sw: loadSwagger(t), t: t}
	srv := &http.Server{Handler: f}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return NewClient(sock), f
}

// TestClientPayloadsMatchSchema sends every request the runtime makes and
// checks each body against the published API definitions.
func TestClientPayloadsMatchSchema(t *testing.T) {
	t.Parallel()
	c, f := startFake(t)
	ctx := context.Background()
	calls := []struct {
		name string
		fn   func() error
	}{
		{"boot source", func() error {
			return c.PutBootSource(ctx, &BootSource{KernelImagePath: "/k/vmlinux", BootArgs: "console=ttyS0 reboot=k panic=1", InitrdPath: "/k/initrd"})
		}},
		{"root drive", func() error {
			return c.PutDrive(ctx, &Drive{DriveID: "rootfs", PathOnHost: "/d/rootfs.ext4", IsRootDevice: true, CacheType: "Unsafe", IOEngine: "Sync"})
		}},
		{"machine config", func() error {
			return c.PutMachineConfig(ctx, &MachineConfig{VCPUCount: 2, MemSizeMiB: 512, TrackDirtyPages: true})
		}},
		{"network", func() error {
			return c.PutNetworkInterface(ctx, &NetworkInterface{IfaceID: "eth0", HostDevName: "ae-tap0", GuestMAC: "02:ae:00:00:00:02"})
		}},
		{"vsock", func() error { return c.PutVsock(ctx, &Vsock{GuestCID: 3, UDSPath: "/v/vsock.sock"}) }},
		{"logger", func() error { return c.PutLogger(ctx, &Logger{LogPath: "/v/log.fifo", Level: "Info", ShowLevel: true}) }},
		{"metrics", func() error { return c.PutMetrics(ctx, &Metrics{MetricsPath: "/v/metrics.fifo"}) }},
		{"start", func() error { return c.Start(ctx) }},
		{"pause", func() error { return c.SetState(ctx, StatePaused) }},
		{"snapshot", func() error {
			return c.CreateSnapshot(ctx, &SnapshotCreate{SnapshotType: "Full", SnapshotPath: "/s/vm.snap", MemFilePath: "/s/vm.mem"})
		}},
		{"resume", func() error { return c.SetState(ctx, StateResumed) }},
		{"load snapshot", func() error {
			return c.LoadSnapshot(ctx, &SnapshotLoad{SnapshotPath: "/s/vm.snap", MemFilePath: "/s/vm.mem", ResumeVM: true})
		}},
	}
	for _, call := range calls {
		if err := call.fn(); err != nil {
			t.Errorf("%s: %v", call.name, err)
		}
	}
	if len(f.seen) != len(calls) {
		t.Errorf("server saw %d requests, want %d: %v", len(f.seen), len(calls), f.seen)
	}
}

// TestSchemaValidatorCatchesMistakes keeps the validator honest: bodies that
// break the schema must be refused, and the client surfaces the fault.
func TestSchemaValidatorCatchesMistakes(t *testing.T) {
	t.Parallel()
	sw := loadSwagger(t)
	bad := []struct{ def, body string }{
		{"Drive", `{"drive_id":"rootfs","path_on_host":"/x"}`},            // is_root_device missing
		{"MachineConfiguration", `{"vcpu_count":"2","mem_size_mib":512}`}, // wrong type
		{"Vsock", `{"guest_cid":3,"uds_path":"/x","cid":3}`},              // unknown property
		{"BootSource", `{"boot_args":"x"}`},                               // kernel missing
		{"InstanceActionInfo", `{"action_type":"Boot"}`},                  // not in the enum
	}
	for _, b := range bad {
		if err := sw.validate(b.def, []byte(b.body)); err == nil {
			t.Errorf("validator accepted %s %s", b.def, b.body)
		}
	}
	c, _ := startFake(t)
	err := c.do(context.Background(), http.MethodPut, "/machine-config", map[string]any{"vcpu_count": 1})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Fault, "mem_size_mib") {
		t.Errorf("invalid request: %v, want the fault message", err)
	}
}
