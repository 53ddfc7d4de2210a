package egress_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/aetherium/aetherium/internal/egress"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want, err string
	}{
		{name: "unset", in: "", want: ""},
		{name: "internet", in: "internet", want: "internet"},
		{name: "none", in: " none ", want: "none"},
		{name: "allowlist canonical", in: "Deb.Debian.org, 10.1.2.3,192.0.2.0/24,10.1.2.3/32", want: "10.1.2.3/32,192.0.2.0/24,deb.debian.org"},
		{name: "masked", in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{name: "ipv6", in: "fd00::/8", err: "IPv4"},
		{name: "single label", in: "localhost", err: "not an IPv4"},
		{name: "empty entry", in: "1.2.3.4,,", err: "not an IPv4"},
		{name: "bad host", in: "-x.example.com", err: "not an IPv4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := egress.Parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("Parse(%q) err = %v, want one containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Errorf("Parse(%q) = %q, %v; want %q", tt.in, p.String(), err, tt.want)
			}
			if q, err := egress.Parse(p.String()); err != nil || q.String() != p.String() {
				t.Errorf("round trip of %q: %q, %v", p.String(), q.String(), err)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`"internet"`, `"internet"`},
		{`"none"`, `"none"`},
		{`["203.0.113.0/24","example.com"]`, `["203.0.113.0/24","example.com"]`},
		{`"203.0.113.7,example.com"`, `["203.0.113.7/32","example.com"]`},
		{`null`, `null`},
	}
	for _, tt := range tests {
		var p egress.Policy
		if err := json.Unmarshal([]byte(tt.in), &p); err != nil {
			t.Errorf("Unmarshal(%s): %v", tt.in, err)
			continue
		}
		if b, _ := json.Marshal(p); string(b) != tt.want {
			t.Errorf("Marshal(Unmarshal(%s)) = %s, want %s", tt.in, b, tt.want)
		}
	}
	for _, bad := range []string{`[]`, `42`, `["fe80::1"]`, `{"mode":"internet"}`} {
		var p egress.Policy
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestResolve(t *testing.T) {
	t.Parallel()
	r := fakeResolver{"mirror.example.org": {netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::1")}}
	p, _ := egress.Parse("mirror.example.org,10.0.0.0/8")
	got, err := egress.Resolve(context.Background(), r, p)
	if err != nil || len(got) != 2 || got[0].String() != "10.0.0.0/8" || got[1].String() != "198.51.100.7/32" {
		t.Errorf("Resolve = %v, %v; want [10.0.0.0/8 198.51.100.7/32] (IPv6 answers dropped)", got, err)
	}
	p, _ = egress.Parse("missing.example.org")
	if _, err := egress.Resolve(context.Background(), r, p); err == nil || !strings.Contains(err.Error(), "missing.example.org") {
		t.Errorf("unresolvable host: err = %v, want one naming it", err)
	}
}
