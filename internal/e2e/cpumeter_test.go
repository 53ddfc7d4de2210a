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
	comm  string
	start int64
	ticks int64
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
		var t int64
		for _, i := range []int{11, 12, 13, 14} {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			t += v
		}
		st, _ := strconv.ParseInt(f[19], 10, 64)
		out[pid] = procTicks{comm: s[open+1 : end], start: st, ticks: t}
	}
	return out
}

// cpuShare is the CPU used between two snapshots, by who used it: this
// aetherd (its own and its reaped children's, the nft runs), this
// benchmark's process, dockerd, containerd and the shims (host-wide:
// other tests' containers count too), and everything else. A process
// alive at both counts its growth; one started between them, all of it;
// one that ended between them only where its parent reaped it (runc under
// its shim, nft under aetherd).
func cpuShare(before, after map[int]procTicks, aetherd int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for pid, a := range after {
		d := a.ticks
		if b, ok := before[pid]; ok && b.start == a.start {
			d -= b.ticks
		}
		if d <= 0 {
			continue
		}
		who := "everything else"
		switch {
		case pid == aetherd:
			who = "aetherd (+ nft)"
		case pid == os.Getpid():
			who = "benchmark client"
		case a.comm == "dockerd" || a.comm == "containerd" || strings.HasPrefix(a.comm, "containerd-shim"):
			who = a.comm + " (host-wide)"
		}
		out[who] += time.Duration(d) * 10 * time.Millisecond // USER_HZ is 100
	}
	return out
}

// cpuTable formats two cpuShare results per item, side by side.
func cpuTable(ours, raw map[string]time.Duration, n int) string {
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
	fmt.Fprintf(&b, "  CPU per create (ms)            aetherium     engine\n")
	for _, w := range whos {
		fmt.Fprintf(&b, "  %-28s %10.1f %10.1f\n", w, per(ours[w]), per(raw[w]))
	}
	return b.String()
}
