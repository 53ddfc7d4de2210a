package main

import (
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/config"
)

// budget is this host's CPUs and RAM times the overcommit ratios: the
// worker's budget for its sandboxes' vCPUs and memory (0: none).
func budget(o config.Overcommit) (vcpus, memoryMB int) {
	vcpus = int(float64(runtime.NumCPU()) * o.CPU)
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		memoryMB = int(float64(uint64(si.Totalram)*uint64(si.Unit)>>20) * o.Memory)
	}
	return vcpus, memoryMB
}
