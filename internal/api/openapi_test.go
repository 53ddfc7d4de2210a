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
	routes := publicRouteTable(t)
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
	for _, r := range routes {
		routed = append(routed, openAPIPattern(r.pattern))
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

// TestOpenAPIDocumentsTheGuard checks that every operation has a unique
// operationId (SDK generators name methods by it) and documents what the
// guard answers for its route: 401 and 429 for keyed routes, 403 for admin
// routes, 415 for JSON bodies, 421 everywhere.
func TestOpenAPIDocumentsTheGuard(t *testing.T) {
	t.Parallel()
	routes := publicRouteTable(t)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                     `json:"operationId"`
			Responses   map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	ids := map[string]string{}
	for _, r := range routes {
		method, path, _ := strings.Cut(openAPIPattern(r.pattern), " ")
		op, ok := doc.Paths[path][strings.ToLower(method)]
		if !ok {
			continue // TestOpenAPIMatchesRoutes reports it
		}
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", r.pattern)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s: operationId %q is %s's too", r.pattern, op.OperationID, other)
		}
		ids[op.OperationID] = r.pattern
		want := []string{"421"}
		if r.access == member || r.access == admin {
			want = append(want, "401", "429")
		}
		if r.access == signed {
			want = append(want, "401", "413")
		}
		if r.access == admin {
			want = append(want, "403")
		}
		if r.body == jsonBody && (method == "POST" || method == "PUT") {
			want = append(want, "415")
		}
		for _, code := range want {
			if _, ok := op.Responses[code]; !ok {
				t.Errorf("%s: the guard answers %s, which is not documented", r.pattern, code)
			}
		}
	}
}

// openAPIPattern is a route pattern as OpenAPI writes its path: without
// ServeMux's end anchor {$} and with a trailing wildcard {x...} as {x}.
func openAPIPattern(pattern string) string {
	return strings.NewReplacer("{$}", "", "...}", "}").Replace(pattern)
}

// publicRouteTable is the route table of an API server with public routes.
func publicRouteTable(t *testing.T) []route {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/a.db", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{DefaultImage: "img", RuntimeName: "docker", Public: true, Events: events.NewLocal(),
		Logs:  LogSource{Store: newTestLogs(t).Store(), Hub: logs.NewHub()},
		Place: func(context.Context, string, int, int) (string, error) { return "w", nil }}, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.routes()
}
