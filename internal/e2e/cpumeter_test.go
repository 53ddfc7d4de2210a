package e2e_test

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// procTicks is one process's CPU in clock ticks (its own and its reaped
// children's), keyed by pid and start time so a reused pid is a new process.
type procTicks struct {
	comm     string
	start    int64
	ticks    int64 // its own and its reaped children's
	children int64 // its reaped children's
	kernel   bool  // a kernel thread (netns and cgroup teardown run in kworkers)
}

// cpuSnapshot reads every process's CPU from /proc.
func cpuSnapshot() map[int]procTicks {
	out := map[int]procTicks{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		data, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		// After the command: utime stime cutime cstime are fields 12–15,
		// starttime is field 20 (0-based, counting state as 0).
		f := strings.Fields(s[end+1:])
		if len(f) < 20 {
			continue
		}
		var t [4]int64
		for i := range t {
			t[i], _ = strconv.ParseInt(f[11+i], 10, 64)
		}
		st, _ := strconv.ParseInt(f[19], 10, 64)
		flags, _ := strconv.ParseUint(f[6], 10, 64)
		out[pid] = procTicks{comm: s[open+1 : end], start: st, ticks: t[0] + t[1] + t[2] + t[3], children: t[2] + t[3],
			kernel: flags&0x00200000 != 0} // PF_KTHREAD
	}
	return out
}

// cpuShare is the CPU used between two snapshots, by who used it: this
// aetherd, its reaped children (the nft runs), this
// benchmark's process, dockerd, containerd and the shims (host-wide:
// other tests' containers count too), kernel threads, and everything else. A process
// alive at both counts its growth; one started between them, all of it;
// one that ended between them only where its parent reaped it (runc under
// its shim, nft under aetherd).
func cpuShare(before, after map[int]procTicks, aetherd int) map[string]time.Duration {
	out := map[string]time.Duration{}
	tick := 10 * time.Millisecond // USER_HZ is 100
	for pid, a := range after {
		d, kids := a.ticks, a.children
		if b, ok := before[pid]; ok && b.start == a.start {
			d, kids = d-b.ticks, kids-b.children
		}
		if d <= 0 {
			continue
		}
		who := "everything else"
		switch {
		case pid == aetherd:
			who = "aetherd"
			d -= kids
			out["aetherd's children (nft)"] += time.Duration(kids) * tick
		case pid == os.Getpid():
			who = "benchmark client"
		case a.comm == "dockerd" || a.comm == "containerd" || strings.HasPrefix(a.comm, "containerd-shim"):
			who = a.comm + " (host-wide)"
		case a.kernel:
			who = "kernel threads"
		}
		out[who] += time.Duration(d) * tick
	}
	return out
}

// cpuTable formats two cpuShare results per item (op: "create", "delete"),
// side by side.
func cpuTable(op string, ours, raw map[string]time.Duration, n int) string {
	var whos []string
	for w := range ours {
		whos = append(whos, w)
	}
	for w := range raw {
		if _, ok := ours[w]; !ok {
			whos = append(whos, w)
		}
	}
	slices.SortFunc(whos, func(a, b string) int { return cmp.Compare(a, b) })
	var b strings.Builder
	per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(n) }
	fmt.Fprintf(&b, "  %-30s aetherium     engine\n", "CPU per "+op+" (ms)")
	for _, w := range whos {
		fmt.Fprintf(&b, "  %-28s %10.1f %10.1f\n", w, per(ours[w]), per(raw[w]))
	}
	return b.String()
}
