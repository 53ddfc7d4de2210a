package network

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/egress"
)

// A sandbox's changes go to the kernel over netlink (google/nftables), one
// transaction per batch, with no nft process: an nft run cost ≈ 20–30 ms of
// CPU (its start and the cache it loads, which grows with the sandboxes'
// chains) on every create and delete (issue 13). Setup and Teardown, once
// per process, still run nft scripts.

// txn is one nftables transaction: the changes of a batch, which the kernel
// applies all or none (commit). cur follows the maps as the transaction
// leaves them, so a later change of the batch sees what an earlier one did.
type txn struct {
	c            *nftables.Conn
	inet, bridge *nftables.Table
	cur          []entry
}

func (f *Firewall) newTxn(cur []entry) (*txn, error) {
	c, err := dial()
	if err != nil {
		return nil, fmt.Errorf("firewall: netlink: %w", err)
	}
	return &txn{c: c, cur: slices.Clone(cur),
		inet:   &nftables.Table{Name: f.cfg.Table, Family: nftables.TableFamilyINet},
		bridge: &nftables.Table{Name: f.cfg.Table, Family: nftables.TableFamilyBridge}}, nil
}

// commit sends the transaction; what names the changes in an error.
func (tx *txn) commit(what string) error {
	if err := tx.c.Flush(); err != nil {
		return fmt.Errorf("firewall: nftables transaction (%s): %w", what, err)
	}
	return nil
}

// sockBuffer is the netlink socket's send and receive buffer: room for a
// batch of maxBatch changes and the kernel's acknowledgement of each of
// their messages (the default 208 KiB overflowed with fifty), as nft sizes
// its own.
const sockBuffer = 8 << 20

// dial opens an nftables connection whose socket has sockBuffer and gives
// up after a minute: a netlink call holds the host's lock.
func dial() (*nftables.Conn, error) {
	return nftables.New(nftables.WithSockOptions(func(c *netlink.Conn) error {
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = rc.Control(func(fd uintptr) {
			for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
				if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, sockBuffer); e != nil && serr == nil {
					serr = fmt.Errorf("firewall: netlink socket buffer: %w", e)
				}
			}
		})
		if err = errors.Join(err, serr); err != nil {
			return err
		}
		return c.SetDeadline(time.Now().Add(time.Minute))
	}))
}

// mapOf is the map of an entry's family.
func (tx *txn) mapOf(family string) *nftables.Set {
	if family == "bridge" {
		return &nftables.Set{Table: tx.bridge, Name: "ports"}
	}
	return &nftables.Set{Table: tx.inet, Name: "sandboxes"}
}

// addElement adds e to its map: its key jumps to its target chain.
func (tx *txn) addElement(e entry) error {
	key, err := elementKey(e)
	if err != nil {
		return err
	}
	el := nftables.SetElement{Key: key, Comment: e.comment, VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: e.target}}
	if err := tx.c.SetAddElements(tx.mapOf(e.family), []nftables.SetElement{el}); err != nil {
		return err
	}
	tx.cur = append(tx.cur, e)
	return nil
}

// deleteElement deletes the element of e's key from its map.
func (tx *txn) deleteElement(e entry) error {
	key, err := elementKey(e)
	if err != nil {
		return err
	}
	if err := tx.c.SetDeleteElements(tx.mapOf(e.family), []nftables.SetElement{{Key: key}}); err != nil {
		return err
	}
	tx.cur = slices.DeleteFunc(tx.cur, func(o entry) bool { return o.family == e.family && o.key == e.key })
	return nil
}

// deleteSandboxElement deletes a sandbox's own element e of the sandboxes
// map. It first adds e again as it was read: the kernel deletes an element
// by its key alone, but refuses to add one whose key holds another verdict,
// so when another process has given the address to another sandbox since
// this process read the map (claims and removes start from what it knows),
// the transaction fails and reruns from a fresh listing instead of deleting
// that sandbox's entry.
func (tx *txn) deleteSandboxElement(e entry) error {
	if err := tx.addElement(entry{family: e.family, key: e.key, target: e.target}); err != nil {
		return err
	}
	return tx.deleteElement(e)
}

// elementKey is e's key as its map holds it: an IPv4 address, or an
// interface name padded to IFNAMSIZ.
func elementKey(e entry) ([]byte, error) {
	if e.family == "bridge" {
		if e.key == "" || len(e.key) >= unix.IFNAMSIZ || strings.ContainsRune(e.key, 0) {
			return nil, fmt.Errorf("firewall: port name %q: 1 to %d bytes", e.key, unix.IFNAMSIZ-1)
		}
		key := make([]byte, unix.IFNAMSIZ)
		copy(key, e.key)
		return key, nil
	}
	a, err := netip.ParseAddr(e.key)
	if err != nil || !a.Is4() {
		return nil, fmt.Errorf("firewall: map key %q is not an IPv4 address", e.key)
	}
	k := a.As4()
	return k[:], nil
}

// replaceChain creates the chain or empties it, then adds rules in order.
func (tx *txn) replaceChain(t *nftables.Table, name string, rules [][]expr.Any) {
	ch := tx.c.AddChain(&nftables.Chain{Name: name, Table: t})
	tx.c.FlushChain(ch)
	for _, r := range rules {
		tx.c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
	}
}

// deleteChain deletes the chain whether or not it is there (add, flush,
// delete).
func (tx *txn) deleteChain(t *nftables.Table, name string) {
	ch := tx.c.AddChain(&nftables.Chain{Name: name, Table: t})
	tx.c.FlushChain(ch)
	tx.c.DelChain(ch)
}

// listEntries lists both maps' elements (ports only with withPorts).
func listEntries(table string, withPorts bool) ([]entry, error) {
	c, err := dial()
	if err != nil {
		return nil, fmt.Errorf("firewall: netlink: %w", err)
	}
	maps := []*nftables.Set{{Table: &nftables.Table{Name: table, Family: nftables.TableFamilyINet}, Name: "sandboxes"}}
	if withPorts {
		maps = append(maps, &nftables.Set{Table: &nftables.Table{Name: table, Family: nftables.TableFamilyBridge}, Name: "ports"})
	}
	var out []entry
	for _, m := range maps {
		els, err := c.GetSetElements(m)
		if err != nil {
			return nil, fmt.Errorf("firewall: list %s map %s: %w", familyName(m.Table.Family), m.Name, err)
		}
		for _, el := range els {
			e := entry{family: familyName(m.Table.Family), comment: el.Comment, target: jumpTarget(el.Val)}
			if e.family == "bridge" {
				name, _, _ := bytes.Cut(el.Key, []byte{0})
				e.key = string(name)
			} else if a, ok := netip.AddrFromSlice(el.Key); ok {
				e.key = a.String()
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func familyName(f nftables.TableFamily) string {
	if f == nftables.TableFamilyBridge {
		return "bridge"
	}
	return "inet"
}

// jumpTarget is the chain of a verdict map element's data (its
// NFTA_DATA_VERDICT attributes), or "" if it is not a jump.
func jumpTarget(data []byte) string {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return ""
	}
	ad.ByteOrder = binary.BigEndian
	var code uint32
	var chain string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = ad.Uint32()
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	if ad.Err() != nil || int32(code) != unix.NFT_JUMP {
		return ""
	}
	return chain
}

// tableExists reports whether the inet table is there.
func tableExists(table string) bool {
	c, err := dial()
	if err != nil {
		return false
	}
	_, err = c.ListTableOfFamily(table, nftables.TableFamilyINet)
	return err == nil
}

// sandboxChains lists the sandbox IDs of the inet table's sb-* chains.
func sandboxChains(table string) ([]string, error) {
	c, err := dial()
	if err != nil {
		return nil, fmt.Errorf("firewall: netlink: %w", err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("firewall: list chains: %w", err)
	}
	var ids []string
	for _, ch := range chains {
		if ch.Table.Name == table {
			if id, ok := strings.CutPrefix(ch.Name, "sb-"); ok && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// The rules, as the kernel's expressions. Each is what nft would make of
// the rule in its comment; nft lists them that way.

// policyRules are the rules of a sandbox's chain, in order.
func policyRules(p egress.Policy, allow []netip.Prefix) [][]expr.Any {
	dns := func(proto byte) []expr.Any { // ip daddr @dns4 meta l4proto <proto> th dport 53 accept
		return join(daddrIn("dns4"), l4proto(proto), dport(53), verdict(expr.VerdictAccept))
	}
	switch {
	case p.Mode == egress.None:
		return [][]expr.Any{verdict(expr.VerdictDrop)}
	case p.Mode == egress.Internet || p.IsZero():
		return [][]expr.Any{dns(unix.IPPROTO_TCP), dns(unix.IPPROTO_UDP),
			join(daddrIn("deny4"), verdict(expr.VerdictDrop)), // ip daddr @deny4 drop
			verdict(expr.VerdictAccept)}
	}
	rules := [][]expr.Any{dns(unix.IPPROTO_TCP), dns(unix.IPPROTO_UDP)}
	for _, pfx := range merge(allow) {
		rules = append(rules, join(daddrInPrefix(pfx), verdict(expr.VerdictAccept))) // ip daddr <prefix> accept
	}
	return append(rules, verdict(expr.VerdictDrop))
}

// portRules are a bridge port's anti-spoofing rules: it may send only ARP
// and IPv4 from its own MAC and address.
func portRules(mac net.HardwareAddr, addr netip.Addr) [][]expr.Any {
	drop, a4 := verdict(expr.VerdictDrop), addr.As4()
	const ip, arp = 0x0800, 0x0806
	return [][]expr.Any{
		join(load(expr.PayloadBaseLLHeader, 6, 6), cmp(expr.CmpOpNeq, mac), drop),                           // ether saddr != mac drop
		join(etherType(arp), load(expr.PayloadBaseNetworkHeader, 8, 6), cmp(expr.CmpOpNeq, mac), drop),      // arp saddr ether != mac drop
		join(etherType(arp), load(expr.PayloadBaseNetworkHeader, 14, 4), cmp(expr.CmpOpNeq, a4[:]), drop),   // arp saddr ip != addr drop
		join(etherType(ip), load(expr.PayloadBaseNetworkHeader, 12, 4), cmp(expr.CmpOpNeq, a4[:]), drop),    // ip saddr != addr drop
		join(etherType(ip), verdict(expr.VerdictAccept)), join(etherType(arp), verdict(expr.VerdictAccept)), // ether type { ip, arp } accept
		drop,
	}
}

func join(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func load(base expr.PayloadBase, offset, n uint32) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: base, Offset: offset, Len: n}}
}

func cmp(op expr.CmpOp, data []byte) []expr.Any {
	return []expr.Any{&expr.Cmp{Op: op, Register: 1, Data: slices.Clone(data)}}
}

// daddr loads an IPv4 packet's destination (meta nfproto ipv4, which nft
// adds to ip daddr in an inet table).
func daddr() []expr.Any {
	return join([]expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}}, cmp(expr.CmpOpEq, []byte{unix.NFPROTO_IPV4}),
		load(expr.PayloadBaseNetworkHeader, 16, 4))
}

func daddrIn(set string) []expr.Any {
	return join(daddr(), []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: set}})
}

func daddrInPrefix(p netip.Prefix) []expr.Any {
	net4 := p.Masked().Addr().As4()
	mask := net.CIDRMask(p.Bits(), 32)
	return join(daddr(), []expr.Any{&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)}},
		cmp(expr.CmpOpEq, net4[:]))
}

func l4proto(proto byte) []expr.Any {
	return join([]expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}}, cmp(expr.CmpOpEq, []byte{proto}))
}

func dport(port uint16) []expr.Any {
	return join(load(expr.PayloadBaseTransportHeader, 2, 2), cmp(expr.CmpOpEq, binary.BigEndian.AppendUint16(nil, port)))
}

func etherType(t uint16) []expr.Any {
	return join(load(expr.PayloadBaseLLHeader, 12, 2), cmp(expr.CmpOpEq, binary.BigEndian.AppendUint16(nil, t)))
}
