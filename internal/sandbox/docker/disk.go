package docker

import (
	"context"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/aetherium/aetherium/internal/sandbox"
)

// Disk limits. Docker has a per-container quota only with overlay2 on xfs
// mounted with pquota (StorageOpt size); Create asks for it and, when the
// daemon refuses the option, remembers that and creates without it. Either
// way DiskOverruns measures what each running sandbox wrote (its writable
// layer, Docker's SizeRw), so the worker fails the ones over the limit and
// the reconciler then removes their containers, which frees the space.

var _ sandbox.DiskWatcher = (*Runtime)(nil)

// storageOpt is the quota Create asks for; nil without a limit or once the
// daemon refused it.
func (r *Runtime) storageOpt() map[string]string {
	if r.cfg.DiskMB <= 0 || r.noQuota.Load() {
		return nil
	}
	return map[string]string{"size": strconv.FormatInt(r.cfg.DiskMB, 10) + "M"}
}

// quotaRefused reports whether a create error is the daemon refusing
// StorageOpt size (any storage driver but overlay2 on xfs with pquota).
func quotaRefused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "storage-opt")
}

// DiskOverruns implements sandbox.DiskWatcher: one ContainerList with sizes
// (dockerd walks each running container's writable layer).
func (r *Runtime) DiskOverruns(ctx context.Context) ([]sandbox.DiskOverrun, error) {
	if r.cfg.DiskMB <= 0 {
		return nil, nil
	}
	cs, err := r.cli.ContainerList(ctx, container.ListOptions{Size: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelOwner+"="+r.cfg.Owner),
		filters.Arg("status", "running"),
	)})
	if err != nil {
		return nil, r.mapErr(err, "")
	}
	var over []sandbox.DiskOverrun
	for _, c := range cs {
		if c.SizeRw > r.cfg.DiskMB<<20 {
			over = append(over, sandbox.DiskOverrun{ID: c.Labels[LabelSandbox], UsedMB: c.SizeRw >> 20, LimitMB: r.cfg.DiskMB})
		}
	}
	return over, nil
}
