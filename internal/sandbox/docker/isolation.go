package docker

import (
	"context"
	"log/slog"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/system"
)

// Isolation is what this Docker host gives sandboxes beyond the container
// settings: found once from the daemon (`docker info`) and logged.
type Isolation struct {
	// UsernsRemap: dockerd runs containers in a user namespace
	// (userns-remap), so a sandbox's root is an unprivileged host uid.
	// RLIMIT_NPROC then counts the sandbox's own processes (per user
	// namespace since Linux 5.14) and Create sets it to PidsLimit; without
	// it root is exempt from RLIMIT_NPROC and only the pids cgroup counts.
	UsernsRemap bool
	// PidsGroups: each sandbox's workload has a pids group of its own with
	// headroom for the agent (cgroup v1 hosts; see cgroup.go).
	PidsGroups bool
	// CgroupVersion is the daemon's, "1" or "2".
	CgroupVersion string
	// StorageDriver and BackingFS decide whether a disk quota exists
	// (overlay2 on xfs with pquota); without one the size is measured.
	StorageDriver, BackingFS string
}

// usernsRemapped reports whether dockerd's security options name a user
// namespace ("name=userns" when userns-remap is set).
func usernsRemapped(securityOptions []string) bool {
	for _, o := range securityOptions {
		for _, kv := range strings.Split(o, ",") {
			if kv == "name=userns" {
				return true
			}
		}
	}
	return false
}

func isolationOf(info system.Info, pidsGroups bool) Isolation {
	iso := Isolation{UsernsRemap: usernsRemapped(info.SecurityOptions), PidsGroups: pidsGroups,
		CgroupVersion: info.CgroupVersion, StorageDriver: info.Driver}
	for _, kv := range info.DriverStatus {
		if kv[0] == "Backing Filesystem" {
			iso.BackingFS = kv[1]
		}
	}
	return iso
}

// Isolation asks the daemon once (again after a failure) and logs the
// answer the first time.
func (r *Runtime) Isolation(ctx context.Context) (Isolation, error) {
	r.isoMu.Lock()
	defer r.isoMu.Unlock()
	if r.iso != nil {
		return *r.iso, nil
	}
	info, err := r.cli.Info(ctx)
	if err != nil {
		return Isolation{}, r.mapErr(err, "")
	}
	iso := isolationOf(info, r.pidsGroups)
	r.iso = &iso
	r.cfg.Logger.InfoContext(ctx, "docker sandbox isolation", slog.Bool("userns_remap", iso.UsernsRemap),
		slog.Bool("workload_pids_groups", iso.PidsGroups), slog.String("cgroup_version", iso.CgroupVersion),
		slog.String("storage_driver", iso.StorageDriver), slog.String("backing_fs", iso.BackingFS))
	return iso, nil
}

// nprocLimit is the RLIMIT_NPROC a sandbox gets: PidsLimit where a user
// namespace makes the limit count the sandbox's own processes, else none.
func nprocLimit(iso Isolation, pids int64) []*container.Ulimit {
	if !iso.UsernsRemap || pids <= 0 {
		return nil
	}
	return []*container.Ulimit{{Name: "nproc", Soft: pids, Hard: pids}}
}
