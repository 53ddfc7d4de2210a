package network

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/aetherium/aetherium/internal/egress"
	"github.com/aetherium/aetherium/internal/errdefs"
)

// FirewallConfig configures a Firewall.
type FirewallConfig struct {
	// Table names the nftables tables (inet, and bridge with Ports); "" means
	// aetherium. Firewalls with different interfaces need different tables.
	Table string
	// Interfaces are the bridges sandboxes' traffic arrives on (the microVM
	// bridge, a Docker network's bridge). Required.
	Interfaces []string
	// Deny adds ranges to egress.Denied and the host's own networks, which
	// are always denied: the sandboxes' own subnets.
	Deny []netip.Prefix
	// DNS are resolvers sandboxes may query (port 53) under internet and
	// allowlist policies even where Deny covers them (a host's resolver is
	// often a private address). Docker's embedded resolver needs none.
	DNS []netip.Addr
	// HostAccess lets sandboxes open connections to the host itself. Off,
	// only replies to the host's own connections reach it, over IPv4 and
	// IPv6 (link-local included).
	HostAccess bool
	// Ports adds per-port anti-spoofing in a bridge-family table: each
	// bound port (Rule.Port) may send only ARP and IPv4 from its own MAC and
	// address; ports named ae-* or aep-* without a binding send nothing.
	Ports bool
}

// Firewall enforces egress policies with nftables: an inet table of its own
// whose forward chain sends what sandboxes send through a verdict map keyed
// by the sandbox's address, to one chain per sandbox (sb-<id>) holding its
// policy; an address without an entry reaches nothing. Its input chain keeps
// sandboxes off the host. Setup rebuilds the base chains and sets and keeps
// sandbox chains; Apply and Remove change one sandbox's. It is safe for
// concurrent use; processes sharing a table must share its configuration.
type Firewall struct {
	cfg FirewallConfig
	mu  sync.Mutex // Apply/Remove: list, then change

	queueMu sync.Mutex
	queued  []*change // waiting for the next batch (see commit)

	claimNext netip.Addr // where the next Claim starts looking (under mu)
	known     []entry    // the sandboxes map after this process's last transaction; nil: unknown (under mu)
}

// change is one Apply, Claim or Remove waiting for its batch: do adds its
// part to the batch's transaction, from the maps' entries as the batch's
// earlier changes leave them (tx.cur).
type change struct {
	name   string // what it does to whom, for errors
	do     func(tx *txn) error
	remove bool // idempotent: without the tables there is nothing to do
	claim  bool // may start from known (see run); so may a remove
	done   chan error
}

// Rule is one sandbox's entry.
type Rule struct {
	// ID is the sandbox's.
	ID string
	// Addr is the sandbox's IPv4 address.
	Addr netip.Addr
	// Policy is what it may reach; the zero Policy means internet.
	Policy egress.Policy
	// Allow is the allowlist resolved (egress.Resolve).
	Allow []netip.Prefix
	// Port and MAC bind a bridge port to the sandbox's MAC and address
	// (anti-spoofing, with FirewallConfig.Ports); "" means none.
	Port string
	MAC  net.HardwareAddr
}

// NewFirewall checks cfg and returns a Firewall; call Setup before Apply.
func NewFirewall(cfg FirewallConfig) (*Firewall, error) {
	if cfg.Table == "" {
		cfg.Table = "aetherium"
	}
	if len(cfg.Interfaces) == 0 {
		return nil, errdefs.InvalidArgument("firewall: no interfaces")
	}
	if !nameRE(cfg.Table) {
		return nil, errdefs.InvalidArgument("firewall: table name %q: letters, digits, '-' and '_' only", cfg.Table)
	}
	return &Firewall{cfg: cfg}, nil
}

func nameRE(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '-')) {
			return false
		}
	}
	return s != ""
}

// Table is the tables' name.
func (f *Firewall) Table() string { return f.cfg.Table }

// Setup creates the tables or brings their base chains and sets up to date
// (one atomic nft transaction), keeping every sandbox's chain. The host's
// networks are read now. It is idempotent.
func (f *Firewall) Setup(ctx context.Context) error {
	t := f.cfg.Table
	ifaces := quoteSet(f.cfg.Interfaces)
	var b strings.Builder
	fmt.Fprintf(&b, `table inet %[1]s {
	set deny4 { type ipv4_addr; flags interval; auto-merge; }
	set dns4 { type ipv4_addr; flags interval; auto-merge; }
	map sandboxes { type ipv4_addr : verdict; }
	chain egress { }
	chain forward { type filter hook forward priority filter - 10; policy accept; }
	chain input { type filter hook input priority filter - 10; policy accept; }
}
flush set inet %[1]s deny4
flush set inet %[1]s dns4
flush chain inet %[1]s forward
flush chain inet %[1]s egress
flush chain inet %[1]s input
add element inet %[1]s deny4 { %[2]s }
add rule inet %[1]s forward iifname %[3]s jump egress
add rule inet %[1]s egress ct state established,related accept
add rule inet %[1]s egress meta nfproto ipv6 drop
add rule inet %[1]s egress ip saddr vmap @sandboxes
add rule inet %[1]s egress drop
`, t, prefixList(f.deny()), ifaces)
	if len(f.cfg.DNS) > 0 {
		var dns []string
		for _, a := range f.cfg.DNS {
			dns = append(dns, a.String())
		}
		fmt.Fprintf(&b, "add element inet %s dns4 { %s }\n", t, strings.Join(dns, ", "))
	}
	if !f.cfg.HostAccess {
		fmt.Fprintf(&b, "add rule inet %[1]s input iifname %[2]s ct state established,related accept\n", t, ifaces)
		fmt.Fprintf(&b, "add rule inet %[1]s input iifname %[2]s drop\n", t, ifaces)
	}
	f.forget()
	if f.cfg.Ports {
		fmt.Fprintf(&b, `table bridge %[1]s {
	map ports { type ifname : verdict; }
	chain prerouting { type filter hook prerouting priority filter; policy accept; }
}
flush chain bridge %[1]s prerouting
add rule bridge %[1]s prerouting iifname vmap @ports
add rule bridge %[1]s prerouting iifname { "ae-*", "aep-*" } drop
`, t)
	}
	return nft(ctx, b.String())
}

// deny is everything no policy reaches but through an allowlist.
func (f *Firewall) deny() []netip.Prefix {
	out := append(slices.Clone(egress.Denied), f.cfg.Deny...)
	if addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4); err == nil {
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				ones, _ := a.Mask.Size()
				out = append(out, netip.PrefixFrom(ip.Unmap(), ones).Masked())
			}
		}
	}
	return out
}

// Apply installs or replaces a sandbox's chain and points its address (and
// its port) at it, in one transaction; an entry another sandbox left on the
// same address is replaced. Idempotent.
func (f *Firewall) Apply(ctx context.Context, r *Rule) error {
	if !r.Addr.Is4() {
		return errdefs.InvalidArgument("firewall: sandbox %s: address %s is not IPv4", r.ID, r.Addr)
	}
	if err := f.check(r); err != nil {
		return err
	}
	return f.commit(&change{name: "apply " + r.ID, do: func(tx *txn) error { return f.apply(tx, r, "") }})
}

// check refuses an allowlist the rules cannot hold (IPv4 only) and a port
// binding the bridge table cannot hold.
func (f *Firewall) check(r *Rule) error {
	for _, p := range r.Allow {
		if !p.Addr().Is4() {
			return errdefs.InvalidArgument("firewall: sandbox %s: allowlist prefix %s is not IPv4", r.ID, p)
		}
	}
	if !f.cfg.Ports || r.Port == "" {
		return nil
	}
	if len(r.MAC) != 6 {
		return errdefs.InvalidArgument("firewall: sandbox %s: MAC %q is not 6 bytes", r.ID, r.MAC)
	}
	if _, err := elementKey(entry{family: "bridge", key: r.Port}); err != nil {
		return errdefs.InvalidArgument("%v", err)
	}
	return nil
}

// apply writes r's chain and entries; comment, when not "", goes on its
// sandboxes-map element.
func (f *Firewall) apply(tx *txn, r *Rule, comment string) error {
	chain := "sb-" + r.ID
	tx.replaceChain(tx.inet, chain, policyRules(r.Policy, r.Allow))
	for _, e := range slices.Clone(tx.cur) {
		var err error
		switch {
		case e.family == "inet" && e.target == chain:
			err = tx.deleteSandboxElement(e)
		case e.family == "inet" && e.key == r.Addr.String():
			err = tx.deleteElement(e)
		}
		if err != nil {
			return err
		}
	}
	if err := tx.addElement(entry{family: "inet", key: r.Addr.String(), target: chain, comment: comment}); err != nil {
		return err
	}
	if !f.cfg.Ports || r.Port == "" {
		return nil
	}
	port := "port-" + r.ID
	tx.replaceChain(tx.bridge, port, portRules(r.MAC, r.Addr))
	for _, e := range slices.Clone(tx.cur) {
		if e.family == "bridge" && (e.target == port || e.key == r.Port) {
			if err := tx.deleteElement(e); err != nil {
				return err
			}
		}
	}
	return tx.addElement(entry{family: "bridge", key: r.Port, target: port})
}

// Claim installs a sandbox's chain and points a free address of pool at it,
// in one transaction, and returns the address: free means no sandbox of any
// process sharing the table has an entry for it, so the sandboxes map is the
// host's allocation table for pool, and two claims never get one address
// (they read and write the map under the table's lock; without the host
// lock, the kernel refuses the second of two equal keys). Addresses in
// reserved (the network's own, its gateway) are never given; the search
// starts after the previous claim's address, so a freed address is not
// reused at once (a new sandbox inherits no conntrack entry of the last one
// there). r.Addr is ignored. An entry of the same sandbox elsewhere is
// replaced. It fails with errdefs.ErrUnavailable when pool has no free
// address.
func (f *Firewall) Claim(ctx context.Context, r *Rule, pool netip.Prefix, reserved ...netip.Addr) (netip.Addr, error) {
	if !pool.Addr().Is4() {
		return netip.Addr{}, errdefs.InvalidArgument("firewall: pool %s is not IPv4", pool)
	}
	if err := f.check(r); err != nil {
		return netip.Addr{}, err
	}
	pool = pool.Masked()
	var got netip.Addr
	c := &change{name: "claim " + r.ID, claim: true, do: func(tx *txn) error {
		got = f.pick(tx.cur, pool, reserved)
		if !got.IsValid() {
			return nil
		}
		rule := *r
		rule.Addr = got
		return f.apply(tx, &rule, claimComment(time.Now()))
	}}
	if err := f.commit(c); err != nil {
		return netip.Addr{}, err
	}
	if !got.IsValid() {
		return netip.Addr{}, errdefs.Unavailable("firewall: no free address in %s for sandbox %s", pool, r.ID)
	}
	return got, nil
}

// A claimed address's element carries the time of its claim, so Prune
// spares the claims of creates under way (their containers do not exist
// yet) for claimGrace.
const (
	claimPrefix = "claimed "
	claimGrace  = 2 * time.Minute
)

// ClaimHold is how long a claimer may take from Claim to its container's
// start: well inside claimGrace, so no Prune frees an address whose
// container is still being made (and another sandbox claims it).
const ClaimHold = claimGrace - 30*time.Second

func claimComment(t time.Time) string { return claimPrefix + strconv.FormatInt(t.Unix(), 10) }

// claimedLately reports whether comment records a claim within claimGrace.
func claimedLately(comment string) bool {
	s, ok := strings.CutPrefix(comment, claimPrefix)
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	return err == nil && time.Since(time.Unix(sec, 0)) < claimGrace
}

// pick is the first address of pool from claimNext on (wrapping) that no
// entry of cur and nothing in reserved holds; the zero Addr if none. It
// runs under mu (inside a batch).
func (f *Firewall) pick(cur []entry, pool netip.Prefix, reserved []netip.Addr) netip.Addr {
	taken := make(map[string]bool, len(cur)+len(reserved))
	for _, e := range cur {
		if e.family == "inet" {
			taken[e.key] = true
		}
	}
	for _, a := range reserved {
		taken[a.String()] = true
	}
	start := f.claimNext
	if !pool.Contains(start) {
		start = pool.Addr()
	}
	a := start
	for {
		if !taken[a.String()] {
			f.claimNext = a.Next()
			return a
		}
		if a = a.Next(); !pool.Contains(a) {
			a = pool.Addr()
		}
		if a == start {
			return netip.Addr{}
		}
	}
}

// maxBatch bounds the changes of one transaction: a change is up to a few
// dozen netlink messages (an allowlist's rules, a port's chain), and the
// kernel acknowledges each, so an unbounded batch outgrew the socket's
// buffers under a burst (the send failed, or the acks were lost after the
// kernel applied it).
const maxBatch = 16

// commit runs c in one transaction with the changes queued beside it (one
// listing of the maps at most and one transaction for up to maxBatch, not
// one per sandbox: with 500 sandboxes a create or delete waited on every
// other's in turn). Whoever holds the lock runs what is queued, from the
// front, until c has run; if a batch fails, each of its changes runs on its
// own, so one change's error is never another's.
func (f *Firewall) commit(c *change) error {
	c.done = make(chan error, 1)
	f.queueMu.Lock()
	f.queued = append(f.queued, c)
	f.queueMu.Unlock()
	unlock := f.lock()
	for batch := f.next(c); len(batch) > 0; batch = f.next(c) {
		err := f.run(batch)
		if err != nil && len(batch) > 1 {
			for _, b := range batch {
				b.done <- f.run([]*change{b})
			}
		} else {
			for _, b := range batch {
				b.done <- err
			}
		}
	}
	unlock()
	return <-c.done // filled by a batch of this caller or of the one that took c
}

// next takes up to maxBatch changes from the front of the queue while c is
// still queued; none once c was taken.
func (f *Firewall) next(c *change) []*change {
	f.queueMu.Lock()
	defer f.queueMu.Unlock()
	if !slices.Contains(f.queued, c) {
		return nil
	}
	n := min(len(f.queued), maxBatch)
	batch := slices.Clone(f.queued[:n])
	f.queued = slices.Delete(f.queued, 0, n)
	return batch
}

// run lists the maps once and applies the changes in one transaction. A
// batch of claims and removes only starts from what this process knows of
// the map (known) and lists nothing: the kernel refuses to add an address
// another process took meanwhile (an element of the same key with another
// chain, which the guard before deleting a sandbox's own element also
// meets), and to delete a chain an element it did not know of still jumps
// to; then the batch runs again from a fresh listing.
func (f *Firewall) run(batch []*change) error {
	cached := f.known != nil && every(batch, func(c *change) bool { return c.claim || c.remove })
	cur := f.known
	if !cached {
		var err error
		if cur, err = listEntries(f.cfg.Table, f.cfg.Ports); err != nil {
			f.known = nil
			switch {
			case tableExists(f.cfg.Table):
				return err
			case every(batch, func(c *change) bool { return c.remove }):
				return nil // never set up: nothing to remove
			}
			return errdefs.FailedPrecondition("firewall: table inet %s is missing (not set up)", f.cfg.Table)
		}
	}
	tx, err := f.newTxn(cur)
	if err != nil {
		return err
	}
	for _, c := range batch {
		if err := c.do(tx); err != nil {
			return err
		}
	}
	if err := tx.commit(batchNames(batch)); err != nil {
		f.known = nil
		if cached {
			return f.run(batch)
		}
		return err
	}
	if !f.cfg.Ports { // only the sandboxes map is followed
		f.known = tx.cur
	}
	return nil
}

// batchNames lists what the changes of batch do.
func batchNames(batch []*change) string {
	names := make([]string, len(batch))
	for i, c := range batch {
		names[i] = c.name
	}
	return list(names)
}

// list joins names, the first eight of them and a count of the rest.
func list(names []string) string {
	if len(names) > 8 {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:8], ", "), len(names)-8)
	}
	return strings.Join(names, ", ")
}

// every reports whether each change of batch is one that is.
func every(batch []*change, is func(*change) bool) bool {
	return !slices.ContainsFunc(batch, func(c *change) bool { return !is(c) })
}

// lock serializes reading the tables and writing a transaction built from
// what was read: within the process (mu) and across the host's aetherd
// processes (LockHost on the table's name), which share the tables when they
// share a network. It returns the unlock.
func (f *Firewall) lock() func() {
	f.mu.Lock()
	unlock := LockHost("nft-" + f.cfg.Table)
	return func() {
		unlock()
		f.mu.Unlock()
	}
}

// Remove deletes a sandbox's entries and chains. Idempotent: without the
// tables (never set up) there is nothing to remove.
func (f *Firewall) Remove(ctx context.Context, id string) error {
	return f.commit(&change{name: "remove " + id, remove: true, do: func(tx *txn) error { return f.remove(tx, id) }})
}

func (f *Firewall) remove(tx *txn, id string) error {
	for _, e := range slices.Clone(tx.cur) {
		var err error
		switch {
		case e.family == "inet" && e.target == "sb-"+id:
			err = tx.deleteSandboxElement(e)
		case e.family == "bridge" && e.target == "port-"+id:
			err = tx.deleteElement(e)
		}
		if err != nil {
			return err
		}
	}
	tx.deleteChain(tx.inet, "sb-"+id)
	if f.cfg.Ports {
		tx.deleteChain(tx.bridge, "port-"+id)
	}
	return nil
}

// Prune removes the entries of every sandbox for which keep returns false,
// but those that claimed their address (Claim) within the last two minutes.
func (f *Firewall) Prune(ctx context.Context, keep func(id string) bool) error {
	defer f.lock()()
	f.known = nil
	if !tableExists(f.cfg.Table) {
		return nil
	}
	ids, err := sandboxChains(f.cfg.Table)
	if err != nil {
		return err
	}
	cur, err := listEntries(f.cfg.Table, f.cfg.Ports)
	if err != nil {
		return err
	}
	claimed := make(map[string]bool)
	for _, e := range cur {
		if e.family == "inet" && claimedLately(e.comment) {
			claimed[strings.TrimPrefix(e.target, "sb-")] = true
		}
	}
	var gone []string
	for _, id := range ids {
		if !keep(id) && !claimed[id] {
			gone = append(gone, id)
		}
	}
	for chunk := range slices.Chunk(gone, maxBatch) {
		tx, err := f.newTxn(cur)
		if err != nil {
			return err
		}
		for _, id := range chunk {
			if err := f.remove(tx, id); err != nil {
				return err
			}
		}
		if err := tx.commit("prune " + list(chunk)); err != nil {
			return err
		}
		cur = tx.cur
	}
	return nil
}

// forget drops what this process knows of the sandboxes map: the tables
// are being changed outside a batch.
func (f *Firewall) forget() {
	f.mu.Lock()
	f.known = nil
	f.mu.Unlock()
}

// Sandboxes lists the IDs of the sandboxes that have a chain.
func (f *Firewall) Sandboxes(ctx context.Context) ([]string, error) {
	return sandboxChains(f.cfg.Table)
}

// Teardown deletes the tables. For tests and uninstalling.
func (f *Firewall) Teardown(ctx context.Context) error {
	f.forget()
	script := fmt.Sprintf("add table inet %[1]s\ndelete table inet %[1]s\n", f.cfg.Table)
	if f.cfg.Ports {
		script += fmt.Sprintf("add table bridge %[1]s\ndelete table bridge %[1]s\n", f.cfg.Table)
	}
	return nft(ctx, script)
}

// entry is one element of the sandboxes or ports map.
type entry struct{ family, key, target, comment string }

func nft(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		if _, lerr := exec.LookPath("nft"); lerr != nil {
			return errdefs.FailedPrecondition("firewall: nft not found (install nftables)")
		}
		return fmt.Errorf("firewall: nft: %v: %s\nscript:\n%s", err, bytes.TrimSpace(out), script)
	}
	return nil
}

func prefixList(ps []netip.Prefix) string {
	ps = merge(ps)
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// merge drops prefixes another one contains (anonymous nft sets refuse
// overlapping intervals) and duplicates.
func merge(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for i, p := range ps {
		covered := false
		for j, q := range ps {
			if i != j && q.Bits() <= p.Bits() && q.Contains(p.Addr()) && (q.Bits() < p.Bits() || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p.Masked())
		}
	}
	return out
}

func quoteSet(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return "{ " + strings.Join(q, ", ") + " }"
}
