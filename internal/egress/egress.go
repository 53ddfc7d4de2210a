// Package egress is the egress policy model shared by the API, the task
// contract, the store and every runtime: what a sandbox may connect to.
// It is a leaf package (standard library only); the runtimes enforce it
// (internal/network's nftables firewall for microVMs and Docker networks).
//
// A policy is one of:
//   - internet: the public internet only;
//   - none: nothing at all;
//   - an allowlist of IPv4 addresses, CIDRs and hostnames: exactly those.
//
// Every mode denies Denied (private, shared, link-local with the metadata
// address 169.254.169.254, loopback, multicast, reserved), the host's own
// addresses, other sandboxes and other local networks; an allowlist entry
// is the only way to reach any of them. Hostnames are resolved once, when
// the sandbox is created (see Resolve), not through a DNS proxy.
package egress

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Modes of a Policy.
const (
	Internet = "internet"
	None     = "none"
)

// MaxEntries bounds an allowlist.
const MaxEntries = 64

// Policy is a sandbox's egress policy. The zero Policy means "unset": the
// template's or the configuration's default applies. Policies are values,
// safe to copy and share.
type Policy struct {
	// Mode is Internet or None; empty with Allow set means an allowlist.
	Mode string
	// Allow lists IPv4 addresses, CIDRs and hostnames, canonicalized and
	// sorted, for an allowlist.
	Allow []string
}

// IsZero reports an unset policy.
func (p Policy) IsZero() bool { return p.Mode == "" && len(p.Allow) == 0 }

// String is the policy's canonical text, which Parse reads back: "internet",
// "none", or the allowlist's entries joined by commas; "" for the zero
// Policy.
func (p Policy) String() string {
	if p.Mode != "" {
		return p.Mode
	}
	return strings.Join(p.Allow, ",")
}

// Parse reads a policy's text: "internet", "none" or a comma-separated
// allowlist. "" gives the zero Policy. Errors name the bad entry.
func Parse(s string) (Policy, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return Policy{}, nil
	case Internet, None:
		return Policy{Mode: s}, nil
	}
	return allowlist(strings.Split(s, ","))
}

func allowlist(entries []string) (Policy, error) {
	var out []string
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		c, err := canonical(e)
		if err != nil {
			return Policy{}, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	switch {
	case len(out) == 0:
		return Policy{}, fmt.Errorf("egress: an allowlist needs at least one entry (or say none)")
	case len(out) > MaxEntries:
		return Policy{}, fmt.Errorf("egress: %d allowlist entries, at most %d", len(out), MaxEntries)
	}
	slices.Sort(out)
	return Policy{Allow: out}, nil
}

// canonical checks one allowlist entry and returns its canonical text.
func canonical(e string) (string, error) {
	if p, err := netip.ParsePrefix(e); err == nil {
		if !p.Addr().Is4() {
			return "", fmt.Errorf("egress: %q: sandboxes have IPv4 networking only", e)
		}
		return p.Masked().String(), nil
	}
	if a, err := netip.ParseAddr(e); err == nil {
		if !a.Is4() {
			return "", fmt.Errorf("egress: %q: sandboxes have IPv4 networking only", e)
		}
		return a.String() + "/32", nil
	}
	if !isHostname(e) {
		return "", fmt.Errorf("egress: %q is not an IPv4 address, CIDR or hostname (with a dot)", e)
	}
	return e, nil
}

// isHostname accepts DNS names with at least one dot (single labels such
// as "internet" or "none" would read as modes).
func isHostname(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

// MarshalJSON writes "internet", "none", an array of allowlist entries, or
// null for the zero Policy.
func (p Policy) MarshalJSON() ([]byte, error) {
	switch {
	case p.IsZero():
		return []byte("null"), nil
	case p.Mode != "":
		return json.Marshal(p.Mode)
	}
	return json.Marshal(p.Allow)
}

// UnmarshalJSON reads what MarshalJSON writes; a string may also be a
// comma-separated allowlist.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		q, err := Parse(s)
		*p = q
		return err
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		if string(b) == "null" {
			*p = Policy{}
			return nil
		}
		return fmt.Errorf("egress: want \"internet\", \"none\" or an array of addresses, CIDRs and hostnames")
	}
	q, err := allowlist(list)
	*p = q
	return err
}

// Or returns p, or def when p is unset.
func (p Policy) Or(def Policy) Policy {
	if p.IsZero() {
		return def
	}
	return p
}

// Resolver looks hostnames up; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Resolve turns an allowlist into prefixes: CIDRs as they are, hostnames
// as /32s of their IPv4 addresses, looked up now. The answer is fixed for
// the sandbox's life (a service that moves addresses needs a new sandbox,
// or a CIDR); resolving at create keeps enforcement in the kernel's
// firewall, with no DNS proxy in the data path. A hostname that does not
// resolve is an error naming it. Modes other than an allowlist give nil.
func Resolve(ctx context.Context, r Resolver, p Policy) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range p.Allow {
		if pre, err := netip.ParsePrefix(e); err == nil {
			out = append(out, pre)
			continue
		}
		addrs, err := r.LookupNetIP(ctx, "ip4", e)
		if err != nil {
			return nil, fmt.Errorf("egress: resolve allowlisted %s: %w", e, err)
		}
		for _, a := range addrs {
			if a = a.Unmap(); a.Is4() {
				out = append(out, netip.PrefixFrom(a, 32))
			}
		}
	}
	return out, nil
}

// Denied lists the IPv4 ranges no policy reaches unless an allowlist names
// them: "this network", RFC1918, shared (CGNAT), loopback, link-local (the
// cloud metadata address 169.254.169.254 included), IETF protocol
// assignments, benchmarking, multicast and reserved. The documentation
// ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are not in it:
// they are not routed on the internet, so denying them protects nothing,
// and test networks (and some package mirrors' proxies) use them as public
// stand-ins. The host's own addresses and the networks it is attached to
// are denied separately, since they differ per host.
var Denied = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}
