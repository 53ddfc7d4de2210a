package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// checkPreviewDomain refuses a preview domain that is, or is a parent or a
// child of, a host name the API answers on (allowed_hosts, listen,
// advertise): pages on preview hosts would then be same-origin with the
// API or able to set cookies for its host. It warns when both share a
// registrable domain (eTLD+1): preview pages are then same-site with the
// API and can toss cookies for the shared parent, which aetherd counters
// (__Host- session cookie, a request with two session cookies is 401) but
// another registrable domain avoids. The warning is returned.
func (a *API) checkPreviewDomain(listen, advertise string) (warning string, err error) {
	d := hostName(a.PreviewDomain)
	if d == "" {
		return "", nil
	}
	hosts := append([]string{listen, advertise}, a.AllowedHosts...)
	for _, h := range hosts {
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		h = hostName(h)
		if h == "" || h == "*" {
			continue
		}
		if _, err := netip.ParseAddr(h); err == nil {
			continue
		}
		if h == d || strings.HasSuffix(h, "."+d) || strings.HasSuffix(d, "."+h) {
			return "", fmt.Errorf("config: api.preview_domain: %q is, or is a parent or child of, the API's host %q; use a domain of its own (ideally another registrable domain)", a.PreviewDomain, h)
		}
		if sameSite(h, d) {
			warning = fmt.Sprintf("api.preview_domain %q shares a registrable domain with the API's host %q: preview pages are same-site with the API; prefer a domain of their own", d, h)
		}
	}
	return warning, nil
}

// hostName is a host name as compared here: lower case, no trailing dot.
func hostName(h string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))
}

// sameSite says two host names share their registrable domain (eTLD+1 of
// the public suffix list).
func sameSite(a, b string) bool {
	ra, errA := publicsuffix.EffectiveTLDPlusOne(a)
	rb, errB := publicsuffix.EffectiveTLDPlusOne(b)
	return errA == nil && errB == nil && ra == rb
}
