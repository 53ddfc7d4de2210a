package firecracker

import (
	"path/filepath"
	"strconv"
)

// JailerConfig is how the jailer confines one Firecracker process.
type JailerConfig struct {
	// Binary is the jailer executable.
	Binary string
	// FirecrackerBinary is the firecracker executable the jailer execs.
	FirecrackerBinary string
	// ID names the jail (the sandbox ID).
	ID string
	// UID and GID the microVM process drops to.
	UID, GID int
	// ChrootBase is the directory jails are made under; "" means /srv/jailer.
	ChrootBase string
	// NetNS is a network namespace path to join; "" means the jailer's own.
	NetNS string
	// CgroupVersion is "1" or "2"; "" means 2.
	CgroupVersion string
	// Cgroups are cgroup settings ("cpu.max=200000 100000") applied to the jail.
	Cgroups []string
	// Daemonize detaches the jailer from its parent.
	Daemonize bool
}

// ChrootDir is the jail's root: <base>/<firecracker binary name>/<id>/root.
// Files the microVM opens (kernel, drives, sockets) must be inside it.
func (j *JailerConfig) ChrootDir() string {
	base := j.ChrootBase
	if base == "" {
		base = "/srv/jailer"
	}
	return filepath.Join(base, filepath.Base(j.FirecrackerBinary), j.ID, "root")
}

// Args is the jailer's command line; firecracker's own arguments follow "--".
// The API socket path is relative to the chroot.
func (j *JailerConfig) Args(apiSock string) []string {
	args := []string{
		"--id", j.ID,
		"--exec-file", j.FirecrackerBinary,
		"--uid", strconv.Itoa(j.UID),
		"--gid", strconv.Itoa(j.GID),
	}
	if j.ChrootBase != "" {
		args = append(args, "--chroot-base-dir", j.ChrootBase)
	}
	if j.NetNS != "" {
		args = append(args, "--netns", j.NetNS)
	}
	v := j.CgroupVersion
	if v == "" {
		v = "2"
	}
	args = append(args, "--cgroup-version", v)
	for _, c := range j.Cgroups {
		args = append(args, "--cgroup", c)
	}
	if j.Daemonize {
		args = append(args, "--daemonize")
	}
	return append(args, "--", "--api-sock", apiSock)
}
