package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/aetherium/aetherium/internal/errdefs"
)

// poolAlias marks TAPs Prepare made for a pool.
const poolAlias = "aether-pool"

// PoolTapName is the i-th pooled TAP.
func PoolTapName(i int) string { return fmt.Sprintf("aep-%d", i) }

// Prepare is the privileged half of a TAP pool, run once as root (`aetherd
// network prepare`): Setup, then n persistent TAPs owned by Config.TapOwner,
// on the bridge as isolated ports, up. Existing pool TAPs are kept, so
// running it again only adds what is missing.
func (m *Manager) Prepare(ctx context.Context, n int) error {
	pool := m.cfg.TapPool
	m.cfg.TapPool = false // Setup and ensureTap do the real work here
	defer func() { m.cfg.TapPool = pool }()
	if err := m.Setup(ctx); err != nil {
		return err
	}
	for i := range n {
		if err := m.ensureTap(PoolTapName(i), ""); err != nil {
			return fmt.Errorf("network: pool tap %s: %w", PoolTapName(i), err)
		}
	}
	return nil
}

// checkPrepared is Setup for a TAP pool: nothing is changed, the bridge
// must already hold the gateway address.
func (m *Manager) checkPrepared() error {
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err == nil {
		addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4)
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == m.Gateway() {
				return nil
			}
		}
		err = fmt.Errorf("it lacks the gateway address %s", m.Gateway())
	}
	return errdefs.FailedPrecondition("network: TAP pool: bridge %s not prepared (%v); run `aetherd network prepare` as root", m.cfg.Bridge, err)
}

// poolTaps lists the pool's TAPs on this host.
func poolTaps() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		if l.Attrs().Alias == poolAlias {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}

// claimTap gives the sandbox a pool TAP: the one it holds, else the first
// free one. A claim is a file named after the TAP holding the sandbox ID,
// created exclusively, so two sandboxes never get one TAP.
func (m *Manager) claimTap(vmID string) (string, error) {
	if tap, ok := m.heldTap(vmID); ok {
		return tap, nil
	}
	if err := os.MkdirAll(m.cfg.ClaimDir, 0o755); err != nil {
		return "", err
	}
	taps, err := poolTaps()
	if err != nil {
		return "", err
	}
	for _, tap := range taps {
		f, err := os.OpenFile(filepath.Join(m.cfg.ClaimDir, tap), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.WriteString(vmID)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return tap, err
	}
	return "", errdefs.Unavailable("network: all %d pool TAPs are taken; run `aetherd network prepare --taps N` with a larger N", len(taps))
}

// heldTap finds the TAP a sandbox has claimed.
func (m *Manager) heldTap(vmID string) (string, bool) {
	claims, _ := m.claims()
	for tap, id := range claims {
		if id == vmID {
			return tap, true
		}
	}
	return "", false
}

// claims maps claimed TAPs to sandbox IDs.
func (m *Manager) claims() (map[string]string, error) {
	entries, err := os.ReadDir(m.cfg.ClaimDir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(m.cfg.ClaimDir, e.Name())); err == nil {
			out[e.Name()] = strings.TrimSpace(string(b))
		}
	}
	return out, nil
}

// releaseTap returns the sandbox's TAP to the pool.
func (m *Manager) releaseTap(vmID string) error {
	if tap, ok := m.heldTap(vmID); ok {
		if err := os.Remove(filepath.Join(m.cfg.ClaimDir, tap)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

func (m *Manager) pruneClaims(ctx context.Context, keep func(vmID string) bool) error {
	claims, err := m.claims()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range claims {
		if !keep(id) {
			errs = append(errs, m.Detach(ctx, id))
		}
	}
	return errors.Join(errs...)
}
