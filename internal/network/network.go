// Package network gives microVMs a network: a Linux bridge (aetherium0 by
// default) holding the subnet's first address as the guests' gateway, one
// TAP device per sandbox enslaved to it, an address per sandbox leased in
// the store (so none is handed out twice, across restarts and workers), a
// MAC derived from that address, and NAT for egress.
//
// Bridge ports are isolated, so guests never reach each other at layer 2,
// and what a guest may reach is its egress policy, enforced by a Firewall
// (nftables: one chain per sandbox keyed by its address, plus per-TAP
// anti-spoofing of MAC, IPv4 and ARP; IPv6 from guests is dropped and the
// bridge has no IPv6 address). Guests never reach the host unless
// Config.HostAccess says so.
//
// Everything the Manager creates lives in the network namespace of the
// process that calls it.
package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/store"
)

// Leases is the part of the store that keeps guest addresses.
type Leases interface {
	AddressLease(ctx context.Context, params *store.AddressLeaseParams) (*store.AddressLease, error)
	AddressList(ctx context.Context, subnet string) ([]*store.AddressLease, error)
	AddressRelease(ctx context.Context, vmID string) error
}

// Config configures a Manager.
type Config struct {
	// Bridge is the bridge's name; "" means aetherium0.
	Bridge string
	// Subnet is where guest addresses come from; its first address is the
	// gateway. The zero Prefix means 10.77.0.0/16.
	Subnet netip.Prefix
	// NAT masquerades guest traffic leaving through other interfaces.
	NAT bool
	// HostAccess lets guests open connections to the host itself (any of
	// its addresses, the gateway's included). Off, only replies to the
	// host's own connections reach it: sandboxed code cannot probe the
	// services the host runs.
	HostAccess bool
	// DNS servers written into guests' /etc/resolv.conf; nil means the
	// host's non-loopback nameservers.
	DNS []string
	// TapOwner is the uid allowed to open the TAP devices besides root (an
	// unprivileged aetherd's with a TAP pool); 0 means root.
	TapOwner int
	// TapGroup is the group allowed to open the TAP devices (jailed
	// Firecrackers', each with a uid of its own); 0 means root's group.
	TapGroup int
	// TapPool makes the Manager use the TAPs Prepare made instead of creating
	// and deleting its own, so aetherd needs no CAP_NET_ADMIN. ClaimDir
	// (required then) records which sandbox holds which TAP on this host.
	TapPool  bool
	ClaimDir string
	// Table names the nftables tables of the egress firewall; "" means
	// aetherium.
	Table string
	// Resolver resolves allowlisted hostnames at Attach; nil means the
	// host's resolver.
	Resolver egress.Resolver
}

// Endpoint is one sandbox's attachment: what the VMM opens and what the
// guest configures.
type Endpoint struct {
	// Tap is the host-side TAP device.
	Tap string
	// MAC is the guest interface's address.
	MAC net.HardwareAddr
	// Address is the guest's address with the subnet's length.
	Address netip.Prefix
	// Gateway is the bridge's address, the guest's default route.
	Gateway netip.Addr
	// DNS lists nameservers for the guest.
	DNS []string
}

// KernelArgs are the kernel command line parameters the guest's init reads
// to configure its interface (see image.guestInit).
func (e *Endpoint) KernelArgs() string {
	args := fmt.Sprintf("aether.ip=%s aether.gw=%s aether.mac=%s", e.Address, e.Gateway, e.MAC)
	if len(e.DNS) > 0 {
		args += " aether.dns=" + strings.Join(e.DNS, ",")
	}
	return args
}

// Manager creates and removes sandboxes' network attachments. It is safe for
// concurrent use.
type Manager struct {
	cfg    Config
	leases Leases
	fw     *Firewall
}

// aliasPrefix marks the TAPs a Manager made, with the sandbox ID after it, so
// Prune finds leftovers whatever their names.
const aliasPrefix = "aether:"

// New returns a Manager; call Setup before Attach.
func New(cfg Config, leases Leases) (*Manager, error) {
	if cfg.Bridge == "" {
		cfg.Bridge = "aetherium0"
	}
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = netip.MustParsePrefix("10.77.0.0/16")
	}
	cfg.Subnet = cfg.Subnet.Masked()
	switch {
	case len(cfg.Bridge) > 15:
		return nil, errdefs.InvalidArgument("network: bridge name %q is longer than 15 characters", cfg.Bridge)
	case !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() > 29:
		return nil, errdefs.InvalidArgument("network: subnet %s must be IPv4 and /29 or larger", cfg.Subnet)
	case cfg.TapPool && cfg.ClaimDir == "":
		return nil, errdefs.InvalidArgument("network: a TAP pool needs a claim directory")
	}
	if cfg.DNS == nil {
		cfg.DNS = hostNameservers("/etc/resolv.conf")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	var dns []netip.Addr
	for _, d := range cfg.DNS {
		if a, err := netip.ParseAddr(d); err == nil && a.Is4() {
			dns = append(dns, a)
		}
	}
	fw, err := NewFirewall(FirewallConfig{Table: cfg.Table, Interfaces: []string{cfg.Bridge}, Deny: []netip.Prefix{cfg.Subnet},
		DNS: dns, HostAccess: cfg.HostAccess, Ports: true})
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, leases: leases, fw: fw}, nil
}

// Bridge returns the bridge's name.
func (m *Manager) Bridge() string { return m.cfg.Bridge }

// Gateway returns the bridge's address.
func (m *Manager) Gateway() netip.Addr { return m.cfg.Subnet.Addr().Next() }

// Firewall is the egress firewall of the Manager's sandboxes.
func (m *Manager) Firewall() *Firewall { return m.fw }

// Setup creates the bridge with the gateway address (IPv4 only: IPv6 is
// disabled on it, so guests have no link-local path to the host), sets up
// the egress firewall (keeping sandboxes' entries), enables forwarding and
// adds the NAT rules. It is idempotent. With a TAP pool it changes no link,
// but the firewall still needs CAP_NET_ADMIN.
func (m *Manager) Setup(ctx context.Context) error {
	if m.cfg.TapPool {
		if err := m.checkPrepared(); err != nil {
			return err
		}
		return m.fw.Setup(ctx)
	}
	br, err := m.ensureBridge()
	if err != nil {
		return errdefs.FailedPrecondition("network: bridge %s: %v (needs CAP_NET_ADMIN)", m.cfg.Bridge, err)
	}
	gw := netip.PrefixFrom(m.Gateway(), m.cfg.Subnet.Bits())
	if err := netlink.AddrReplace(br, &netlink.Addr{IPNet: ipNet(gw)}); err != nil {
		return fmt.Errorf("network: address %s on %s: %w", gw, m.cfg.Bridge, err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+m.cfg.Bridge+"/disable_ipv6", []byte("1"), 0o644); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("network: disable IPv6 on %s: %w", m.cfg.Bridge, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("network: %s up: %w", m.cfg.Bridge, err)
	}
	if err := m.fw.Setup(ctx); err != nil {
		return err
	}
	// The iptables host guard of earlier versions; the firewall's input
	// chain replaces it.
	deleteRule(ctx, []string{"filter", "INPUT", "-i", m.cfg.Bridge, "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED", "-j", "DROP"})
	if !m.cfg.NAT {
		return nil
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("network: enable forwarding: %w", err)
	}
	for _, rule := range m.natRules() {
		if err := ensureRule(ctx, rule); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) ensureBridge() (netlink.Link, error) {
	if l, err := netlink.LinkByName(m.cfg.Bridge); err == nil {
		if l.Type() != "bridge" {
			return nil, fmt.Errorf("%s exists and is a %s, not a bridge", m.cfg.Bridge, l.Type())
		}
		return l, nil
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: m.cfg.Bridge}}
	if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	return netlink.LinkByName(m.cfg.Bridge)
}

// natRules are iptables rules (table first): masquerade what leaves the
// subnet through another interface, and let forwarded traffic through even
// where a FORWARD policy of DROP is set (as Docker does). These accepts only
// get past Docker's iptables policy: what a guest may reach is decided in
// the Firewall's own base chain, whose drops no iptables accept overrides.
func (m *Manager) natRules() [][]string {
	sub, br := m.cfg.Subnet.String(), m.cfg.Bridge
	return [][]string{
		{"nat", "POSTROUTING", "-s", sub, "!", "-o", br, "-j", "MASQUERADE"},
		{"filter", "FORWARD", "-i", br, "!", "-o", br, "-j", "ACCEPT"},
		{"filter", "FORWARD", "-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
	}
}

// ensureRule inserts an iptables rule unless it is there (-C checks).
func ensureRule(ctx context.Context, rule []string) error {
	spec := append([]string{"-w", "-t", rule[0]}, rule[1:]...)
	check := append([]string{"-w", "-t", rule[0], "-C"}, rule[1:]...)
	if exec.CommandContext(ctx, "iptables", check...).Run() == nil {
		return nil
	}
	insert := append([]string{"-w", "-t", rule[0], "-I"}, rule[1:]...)
	if out, err := exec.CommandContext(ctx, "iptables", insert...).CombinedOutput(); err != nil {
		return fmt.Errorf("network: iptables %s: %v: %s", strings.Join(spec, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// deleteRule removes an iptables rule if it is there.
func deleteRule(ctx context.Context, rule []string) {
	exec.CommandContext(ctx, "iptables", append([]string{"-w", "-t", rule[0], "-D"}, rule[1:]...)...).Run()
}

// Teardown removes the iptables rules, the firewall's tables, the pool's
// TAPs and the bridge (other TAPs still on it are detached by the kernel).
// For tests and uninstalling.
func (m *Manager) Teardown(ctx context.Context) error {
	for _, rule := range m.natRules() {
		deleteRule(ctx, rule)
	}
	if err := m.fw.Teardown(ctx); err != nil {
		return err
	}
	if taps, err := poolTaps(); err == nil {
		for _, name := range taps {
			if l, err := netlink.LinkByName(name); err == nil {
				netlink.LinkDel(l)
			}
		}
	}
	l, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return nil
	}
	return netlink.LinkDel(l)
}

// TapName is the TAP device of a sandbox: "ae-" and the first 12 characters
// of its ID without dashes (interface names have at most 15).
func TapName(vmID string) string {
	id := strings.ReplaceAll(vmID, "-", "")
	return "ae-" + id[:min(12, len(id))]
}

// Attach leases the sandbox an address, creates its TAP on the bridge and
// installs its egress policy (the zero Policy means internet), binding the
// TAP to the sandbox's MAC and address. Allowlisted hostnames are resolved
// now. It is idempotent: attaching an attached sandbox returns the same
// endpoint, with the policy installed again.
func (m *Manager) Attach(ctx context.Context, vmID string, policy egress.Policy) (*Endpoint, error) {
	allow, err := egress.Resolve(ctx, m.cfg.Resolver, policy)
	if err != nil {
		return nil, errdefs.InvalidArgument("network: sandbox %s: %v", vmID, err)
	}
	addr, err := m.lease(ctx, vmID)
	if err != nil {
		return nil, err
	}
	ep, err := m.attachTap(ctx, vmID, addr)
	if err != nil {
		return nil, err
	}
	err = m.fw.Apply(ctx, &Rule{ID: vmID, Addr: addr, Policy: policy, Allow: allow, Port: ep.Tap, MAC: ep.MAC})
	if err != nil {
		return nil, err
	}
	return ep, nil
}

func (m *Manager) attachTap(ctx context.Context, vmID string, addr netip.Addr) (*Endpoint, error) {
	var err error
	ep := &Endpoint{Tap: TapName(vmID), MAC: macFor(addr), Address: netip.PrefixFrom(addr, m.cfg.Subnet.Bits()),
		Gateway: m.Gateway(), DNS: m.cfg.DNS}
	if m.cfg.TapPool {
		if ep.Tap, err = m.claimTap(vmID); err != nil {
			m.leases.AddressRelease(ctx, vmID)
			return nil, err
		}
		return ep, nil
	}
	if err := m.ensureTap(ep.Tap, vmID); err != nil {
		return nil, fmt.Errorf("network: tap %s: %w", ep.Tap, err)
	}
	return ep, nil
}

// ensureTap makes the TAP name for a sandbox, or for the pool when vmID is
// empty: owned by TapOwner, an isolated port of the bridge, up.
func (m *Manager) ensureTap(name, vmID string) error {
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return errdefs.FailedPrecondition("bridge %s is missing (Setup not run?)", m.cfg.Bridge)
	}
	tap, err := netlink.LinkByName(name)
	if err != nil {
		t := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR, Owner: uint32(m.cfg.TapOwner), Group: uint32(m.cfg.TapGroup)}
		if err := netlink.LinkAdd(t); err != nil {
			return err
		}
		if tap, err = netlink.LinkByName(name); err != nil {
			return err
		}
	}
	alias := aliasPrefix + vmID
	if vmID == "" {
		alias = poolAlias
	}
	if tap.Attrs().Alias != alias {
		if err := netlink.LinkSetAlias(tap, alias); err != nil {
			return err
		}
	}
	if err := netlink.LinkSetMaster(tap, br); err != nil {
		return err
	}
	if err := netlink.LinkSetIsolated(tap, true); err != nil {
		return fmt.Errorf("isolate port: %w", err)
	}
	return netlink.LinkSetUp(tap)
}

// lease returns the sandbox's address, taking the lowest free one the first
// time. Another worker may take the same address between the list and the
// lease; the store refuses one of them, which tries again.
func (m *Manager) lease(ctx context.Context, vmID string) (netip.Addr, error) {
	subnet := m.cfg.Subnet.String()
	for {
		held, err := m.leases.AddressList(ctx, subnet)
		if err != nil {
			return netip.Addr{}, err
		}
		used := map[netip.Addr]bool{}
		for _, l := range held {
			a, _ := netip.ParseAddr(l.Address)
			if l.VMID == vmID {
				return a, nil
			}
			used[a] = true
		}
		free, ok := m.firstFree(used)
		if !ok {
			return netip.Addr{}, errdefs.Unavailable("network: no free address left in %s", subnet)
		}
		l, err := m.leases.AddressLease(ctx, &store.AddressLeaseParams{Subnet: subnet, Address: free.String(), VMID: vmID})
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			continue
		}
		if err != nil {
			return netip.Addr{}, err
		}
		return netip.ParseAddr(l.Address)
	}
}

// firstFree is the lowest address after the gateway that is not used,
// excluding the broadcast address.
func (m *Manager) firstFree(used map[netip.Addr]bool) (netip.Addr, bool) {
	for a := m.Gateway().Next(); m.cfg.Subnet.Contains(a.Next()); a = a.Next() {
		if !used[a] {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Detach removes the sandbox's firewall entries and TAP and frees its
// address. It is idempotent.
func (m *Manager) Detach(ctx context.Context, vmID string) error {
	if err := m.fw.Remove(ctx, vmID); err != nil {
		return err
	}
	if m.cfg.TapPool {
		if err := m.releaseTap(vmID); err != nil {
			return err
		}
		return m.leases.AddressRelease(ctx, vmID)
	}
	if l, err := netlink.LinkByName(TapName(vmID)); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			return fmt.Errorf("network: remove tap %s: %w", TapName(vmID), err)
		}
	}
	return m.leases.AddressRelease(ctx, vmID)
}

// Prune detaches every sandbox that has a TAP or firewall entries from this
// Manager but for which keep returns false: leftovers of sandboxes deleted while the
// daemon was down or that crashed half-created.
func (m *Manager) Prune(ctx context.Context, keep func(vmID string) bool) error {
	if err := m.fw.Prune(ctx, keep); err != nil {
		return err
	}
	if m.cfg.TapPool {
		return m.pruneClaims(ctx, keep)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range links {
		id, ok := strings.CutPrefix(l.Attrs().Alias, aliasPrefix)
		if ok && !keep(id) {
			errs = append(errs, m.Detach(ctx, id))
		}
	}
	return errors.Join(errs...)
}

// macFor derives a locally administered unicast MAC from an IPv4 address,
// unique within the subnet because the address is.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0xae, b[0], b[1], b[2], b[3]}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}

// HostResolvers are the host's non-loopback IPv4 nameservers: what
// sandboxes may query on port 53 under internet and allowlist policies
// (Docker's embedded resolver sends its upstream queries from the
// container's namespace, so they pass the sandbox's rules too).
func HostResolvers() []netip.Addr {
	var out []netip.Addr
	for _, s := range hostNameservers("/etc/resolv.conf") {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// hostNameservers reads the non-loopback nameservers of a resolv.conf: a
// guest cannot reach the host's 127.0.0.53.
func hostNameservers(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return []string{}
	}
	out := []string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && a.Is4() && !a.IsLoopback() {
				out = append(out, f[1])
			}
		}
	}
	return out
}
