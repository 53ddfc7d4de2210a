// Package hostprobe runs bounded checks of what this host can do (does a
// guest boot with KVM here?) and keeps each verdict in a file, keyed by what
// the verdict depends on (kernel, emulator binary, /dev/kvm), so a host is
// probed once, not on every start, and a changed host is probed again.
//
// It is a leaf package: the microVM runtimes and cmd/aetherd import it.
package hostprobe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Verdict is the outcome of one probe on one host.
type Verdict struct {
	// OK reports that the probed capability works.
	OK bool `json:"ok"`
	// Why says why not (or, for OK, what was proven), in one line.
	Why string `json:"why,omitempty"`
	// Key identifies the host state the verdict holds for (see Key).
	Key string `json:"key"`
	// At is when the probe finished.
	At time.Time `json:"at"`
}

// Cache holds verdicts in memory and in a JSON file. Its methods are safe
// for concurrent use; one probe of a name runs at a time, and callers asking
// while it runs share its verdict. Another process sharing the file may
// overwrite entries (last writer wins): verdicts are facts about the host,
// so either writer is right.
type Cache struct {
	path string

	mu       sync.Mutex
	verdicts map[string]Verdict
	running  map[string]chan struct{} // closed when that name's probe ends
}

// NewCache returns a cache backed by the file at path (created on the first
// verdict). A missing or unreadable file is an empty cache.
func NewCache(path string) *Cache {
	c := &Cache{path: path, verdicts: map[string]Verdict{}, running: map[string]chan struct{}{}}
	if raw, err := os.ReadFile(path); err == nil {
		json.Unmarshal(raw, &c.verdicts) // a corrupt file only costs a new probe
	}
	return c
}

// Get returns the verdict of name for key without probing; ok is false when
// there is none for that key.
func (c *Cache) Get(name, key string) (v Verdict, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok = c.verdicts[name]
	return v, ok && v.Key == key
}

// Running reports whether a probe of name is under way.
func (c *Cache) Running(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running[name] != nil
}

// Run returns the verdict of name for key, probing when there is none: probe
// runs with a context that ends after timeout, and its nil error means OK.
// A probe cut off by the caller's ctx yields no verdict (ctx's error is
// returned and nothing is kept), so a shutdown never records "does not work".
// A probe that outlives timeout is a negative verdict saying so.
func (c *Cache) Run(ctx context.Context, name, key string, timeout time.Duration, probe func(context.Context) error) (Verdict, error) {
	for {
		c.mu.Lock()
		if v, ok := c.verdicts[name]; ok && v.Key == key {
			c.mu.Unlock()
			return v, nil
		}
		wait := c.running[name]
		if wait == nil {
			done := make(chan struct{})
			c.running[name] = done
			c.mu.Unlock()
			return c.probe(ctx, name, key, timeout, probe, done)
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return Verdict{}, ctx.Err()
		}
	}
}

func (c *Cache) probe(ctx context.Context, name, key string, timeout time.Duration, probe func(context.Context) error, done chan struct{}) (Verdict, error) {
	defer func() {
		c.mu.Lock()
		delete(c.running, name)
		c.mu.Unlock()
		close(done)
	}()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return Verdict{}, ctx.Err()
	}
	v := Verdict{OK: err == nil, Key: key, At: time.Now().UTC()}
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(pctx.Err(), context.DeadlineExceeded):
		v.Why = fmt.Sprintf("did not finish within %s", timeout)
	default:
		v.Why = err.Error()
	}
	return v, c.put(name, v)
}

// put records v and rewrites the file atomically (temp file, then rename).
func (c *Cache) put(name string, v Verdict) error {
	c.mu.Lock()
	c.verdicts[name] = v
	raw, err := json.MarshalIndent(c.verdicts, "", "  ")
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}

// Key joins the facts a verdict depends on into one cache key. Start it with
// the host's kernel (Kernel), then the binaries and devices the probe uses
// (File, Device).
func Key(parts ...string) string { return strings.Join(parts, "|") }

// Kernel returns the running kernel's release, like 6.1.0-28-amd64.
func Kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown-kernel"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// File identifies an executable or file by resolved path, size and
// modification time, so an upgrade (a new QEMU) changes the key. A missing
// file has an identity too ("missing").
func File(path string) string {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	st, err := os.Stat(path)
	if err != nil {
		return path + ":missing"
	}
	return fmt.Sprintf("%s:%d:%d", path, st.Size(), st.ModTime().UnixNano())
}

// Device identifies a device node by its device number (major:minor), so a
// different /dev/kvm (another hypervisor module) changes the key.
func Device(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return path + ":missing"
	}
	return fmt.Sprintf("%s:%d:%d", path, unix.Major(st.Rdev), unix.Minor(st.Rdev))
}
