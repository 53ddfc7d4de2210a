package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aetherium/aetherium/internal/config"
	"github.com/aetherium/aetherium/internal/network"
)

// runNetwork implements `aetherd network prepare N`: as root, make the
// microVM bridge, NAT and N pool TAPs owned by network.tap_owner, for an
// aetherd that runs with network.tap_pool and no CAP_NET_ADMIN.
func runNetwork(ctx context.Context, args []string) error {
	cfg, rest, err := config.Parse("aetherd network", args)
	if err != nil {
		return err
	}
	if len(rest) != 2 || rest[0] != "prepare" {
		return errors.New("network: want `prepare N` (N pool TAPs)")
	}
	n, err := strconv.Atoi(rest[1])
	if err != nil || n < 1 || n > 4096 {
		return fmt.Errorf("network prepare: %q is not a TAP count from 1 to 4096", rest[1])
	}
	nc := networkConfig(cfg)
	nc.TapPool = false
	m, err := network.New(nc, nil)
	if err != nil {
		return err
	}
	if err := m.Prepare(ctx, n); err != nil {
		return err
	}
	fmt.Printf("bridge %s (gateway %s) with %d pool TAPs owned by uid %d\n", m.Bridge(), m.Gateway(), n, nc.TapOwner)
	return nil
}
