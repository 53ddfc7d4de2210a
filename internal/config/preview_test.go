package config

import (
	"strings"
	"testing"
)

// TestPreviewDomainCheck: a preview domain that is, or is a parent or
// child of, a host the API answers on is refused; one that only shares its
// registrable domain is allowed with a warning; IPs and "*" never match.
func TestPreviewDomainCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, preview, listen, advertise string
		allowed                          []string
		wantErr, wantWarn                bool
	}{
		{"off", "", "api.example.com:8080", "", nil, false, false},
		{"another registrable domain", "example-preview.com", "0.0.0.0:8080", "", []string{"api.example.com", "*"}, false, false},
		{"equal to an allowed host", "example.com", "0.0.0.0:8080", "", []string{"Example.COM."}, true, false},
		{"parent of an allowed host", "example.com", "0.0.0.0:8080", "", []string{"api.example.com"}, true, false},
		{"child of the listen host", "preview.api.example.com", "api.example.com:8080", "", nil, true, false},
		{"parent of the advertise host", "example.com", "0.0.0.0:8080", "node1.example.com:8080", nil, true, false},
		{"sibling under one registrable domain", "preview.example.com", "0.0.0.0:8080", "", []string{"api.example.com"}, false, true},
		{"IP literals never match", "preview.test", "127.0.0.1:8080", "10.0.0.1:8080", nil, false, false},
		{"public suffix siblings are other sites", "a.github.io", "0.0.0.0:8080", "", []string{"b.github.io"}, false, false},
	}
	for _, tt := range tests {
		a := &API{PreviewDomain: tt.preview, AllowedHosts: tt.allowed}
		warn, err := a.checkPreviewDomain(tt.listen, tt.advertise)
		if (err != nil) != tt.wantErr || (warn != "") != tt.wantWarn {
			t.Errorf("%s: warning %q, error %v; want error %v, warning %v", tt.name, warn, err, tt.wantErr, tt.wantWarn)
		}
		if err != nil && !strings.Contains(err.Error(), "api.preview_domain") {
			t.Errorf("%s: error %v does not name the key", tt.name, err)
		}
	}
}
