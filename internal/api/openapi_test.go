package api

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/internal/events"
	"github.com/aetherium/aetherium/internal/logs"
	"github.com/aetherium/aetherium/internal/store/sqlite"
)

// TestOpenAPIMatchesRoutes checks the served OpenAPI document against the
// real route table both ways: every route is documented and every documented
// operation is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/a.db", "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(Config{DefaultImage: "img", RuntimeName: "docker", Public: true, Events: events.NewLocal(),
		Logs:  LogSource{Store: newTestLogs(t).Store(), Hub: logs.NewHub()},
		Place: func(context.Context, string) (string, error) { return "w", nil }}, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var documented, routed []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	for _, r := range s.routes() {
		routed = append(routed, r.pattern)
	}
	slices.Sort(documented)
	slices.Sort(routed)
	for _, r := range routed {
		if !slices.Contains(documented, r) {
			t.Errorf("route %q is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routed, d) {
			t.Errorf("openapi.json documents %q, which is not routed", d)
		}
	}
}
