package image

import (
	"context"
	"fmt"
	"os/exec"
)

// CloneDisk makes dst a copy-on-write clone of the disk image src: a
// reflink where the filesystem shares blocks (XFS, Btrfs), else a sparse
// copy, so holes in the 4 GiB template rootfs take no space. Raw disks need
// this where a VMM has no overlay format (Firecracker); QEMU uses qcow2.
func CloneDisk(ctx context.Context, src, dst string) error {
	out, err := exec.CommandContext(ctx, "cp", "--reflink=auto", "--sparse=always", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("clone %s: %v: %s", src, err, out)
	}
	return nil
}
