package task

import (
	"encoding/json"
	"testing"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{name: "exec env", in: `{"command":"ls","env":{"TOKEN":"s3cret"}}`, want: `{"command":"ls"}`},
		{name: "no env", in: `{"command":"ls"}`, want: `{"command":"ls"}`},
		{name: "not an object", in: `[1]`, want: `[1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(Redact(json.RawMessage(tt.in))); got != tt.want {
				t.Errorf("Redact(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
