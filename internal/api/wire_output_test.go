package api

import (
	"encoding/json"
	"testing"

	"github.com/aetherium/aetherium/internal/store"
)

// TestExecutionOutputAsText guards issue 10's "a multi-byte character cut at
// the cap": JSON shows output cut before the partial character, never a
// U+FFFD for it, while the stored execution keeps its exact bytes.
func TestExecutionOutputAsText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		out       string
		truncated bool
		want      string
	}{
		{"ascii", "hello", true, "hello"},
		{"4-byte char cut after 1", "ab\xf0", true, "ab"},
		{"4-byte char cut after 3", "ab\xf0\x9f\x98", true, "ab"},
		{"whole 4-byte char", "ab\xf0\x9f\x98\x80", true, "ab😀"},
		{"2-byte char cut", "é\xc3", true, "é"},
		{"not truncated: shown as it is", "ab\xf0\x9f", false, "ab\ufffd\ufffd"},
		{"invalid byte inside", "a\xffb", true, "a\ufffdb"},
		{"empty", "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := &store.Execution{Stdout: tt.out, StdoutTruncated: tt.truncated, Stderr: tt.out, StderrTruncated: tt.truncated}
			b, err := json.Marshal(executionOut(e))
			if err != nil {
				t.Fatal(err)
			}
			var got struct{ Stdout, Stderr string }
			json.Unmarshal(b, &got)
			if got.Stdout != tt.want || got.Stderr != tt.want {
				t.Errorf("output %q (truncated %v) shown as %q / %q, want %q", tt.out, tt.truncated, got.Stdout, got.Stderr, tt.want)
			}
			if e.Stdout != tt.out {
				t.Errorf("rendering changed the stored bytes: %q", e.Stdout)
			}
		})
	}
}
