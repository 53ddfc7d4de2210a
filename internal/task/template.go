package task

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/tools"
)

// Pool sandboxes are created with these resources; a create asking for
// others is not answered from the pool.
const (
	PoolVCPUs    = 1
	PoolMemoryMB = 512
)

// TemplateSpec is what a template is built from; it is stored, as JSON, in
// the template row that template:build reads.
type TemplateSpec struct {
	// Base is the image the template starts from.
	Base         string            `json:"base"`
	Tools        []string          `json:"tools,omitempty"`
	ToolVersions map[string]string `json:"tool_versions,omitempty"`
	// Setup commands run in order through /bin/sh -c after the tools.
	Setup []string `json:"setup,omitempty"`
	// Egress is the default egress policy of sandboxes made from the
	// template (and its pool); unset means the configuration's. It is not
	// part of Hash: it changes no image. The build itself runs under the
	// configuration's default.
	Egress egress.Policy `json:"egress"`
}

// Hash identifies the spec with its planned steps: same hash, same template
// (the cache key).
func (s *TemplateSpec) Hash(steps []tools.Step) string {
	var specs []string
	for _, st := range steps {
		specs = append(specs, st.Spec())
	}
	b, _ := json.Marshal(struct {
		Base  string
		Steps []string
		Setup []string
	}{s.Base, specs, s.Setup})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// CreateTimeout is the attempt timeout of a vm:create or template:build that
// installs steps: vm:create's default plus each recipe's timeout. Pass it as
// SubmitParams.Timeout. It is at most MaxTimeout.
func CreateTimeout(steps []tools.Step) time.Duration {
	d := policies[KindVMCreate].Timeout
	for _, s := range steps {
		d += s.Recipe.Timeout
	}
	return min(d, MaxTimeout())
}
