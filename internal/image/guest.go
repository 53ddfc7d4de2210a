package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/aetherium/aetherium/internal/errdefs"
)

// GuestModules are the kernel modules a microVM needs before its root disk
// and agent channel exist (Debian builds them as modules). Dependencies come
// from modules.dep.
var GuestModules = []string{"virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console", "virtio_net",
	"crc32c_generic", "ext4", "vmw_vsock_virtio_transport", "virtio_rng"}

// Guest is what a microVM boots: a kernel, an initramfs that loads modules
// and hands over to the agent, and an ext4 root filesystem with the agent.
type Guest struct {
	Dir           string
	Kernel        string
	Initrd        string
	Rootfs        string
	KernelVersion string
}

// guestInit is the initramfs's /init: configure the network the kernel
// command line describes (aether.ip/gw/dns, see network.Endpoint), mount the
// root disk and exec the agent as PID 1 of the real root.
// aether.probe=1 only proves the kernel boots (used to test whether KVM works).
const guestInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m 2>/dev/null; done
CMD=$(cat /proc/cmdline)
arg() { echo "$CMD" | sed -n "s/.*aether.$1=\([^ ]*\).*/\1/p"; }
if echo "$CMD" | grep -q aether.probe=1; then echo AETHER-PROBE-OK; poweroff -f; fi
LISTEN=$(arg listen)
HOST=$(arg hostname)
[ -n "$HOST" ] && hostname "$HOST"
ip link set lo up
IP=$(arg ip)
if [ -n "$IP" ]; then
  i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
  { ip link set eth0 up && ip addr add "$IP" dev eth0 && ip route add default via "$(arg gw)"; } ||
    echo "aether-init: cannot configure eth0 with $IP"
fi
i=0; while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "aether-init: cannot mount /dev/vda"; poweroff -f; }
DNS=$(arg dns)
if [ -n "$DNS" ]; then
  rm -f /newroot/etc/resolv.conf
  for ns in $(echo "$DNS" | tr , ' '); do echo "nameserver $ns"; done > /newroot/etc/resolv.conf
fi
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run/aether
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
echo "aether-init: starting agent ($LISTEN)"
exec switch_root /newroot /.aether/aether-agent --listen "$LISTEN"
`

// GuestBuilder makes microVM guests from local Docker images, cached by
// image ID, agent and kernel in CacheDir.
type GuestBuilder struct {
	b         *Builder
	cacheDir  string
	agentPath string
	busybox   string
	modules   string // /lib/modules
	boot      string // /boot
}

// NewGuestBuilder returns a builder using the host's Debian kernel
// (linux-image-amd64) and static busybox (busybox-static).
func NewGuestBuilder(b *Builder, cacheDir, agentPath string) *GuestBuilder {
	return &GuestBuilder{b: b, cacheDir: cacheDir, agentPath: agentPath, busybox: "/bin/busybox", modules: "/lib/modules", boot: "/boot"}
}

// kernelVersion picks the newest kernel that has both an image in /boot and
// modules.
func (g *GuestBuilder) kernelVersion() (string, error) {
	entries, _ := filepath.Glob(filepath.Join(g.boot, "vmlinuz-*"))
	var versions []string
	for _, e := range entries {
		v := strings.TrimPrefix(filepath.Base(e), "vmlinuz-")
		if _, err := os.Stat(filepath.Join(g.modules, v, "modules.dep")); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", errdefs.FailedPrecondition("no kernel with modules under %s (apt-get install linux-image-amd64)", g.boot)
	}
	sort.Strings(versions)
	return versions[len(versions)-1], nil
}

// Build returns the guest for ref: one Commit saved under that name, else
// one built once from the Docker image ref.
func (g *GuestBuilder) Build(ctx context.Context, ref string) (*Guest, error) {
	if guest, ok := g.committed(ref); ok {
		return guest, nil
	}
	kv, err := g.kernelVersion()
	if err != nil {
		return nil, err
	}
	imageID, ok, err := g.b.Exists(ctx, ref, "")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errdefs.FailedPrecondition("image %q is not present; build it with `aether image build`", ref)
	}
	agent, err := os.ReadFile(g.agentPath)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", imageID, kv, guestInit)
	h.Write(agent)
	dir := filepath.Join(g.cacheDir, hex.EncodeToString(h.Sum(nil))[:16])
	guest := &Guest{Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz"),
		Rootfs: filepath.Join(dir, "rootfs.ext4"), KernelVersion: kv}
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return guest, nil
	}
	// One build at a time per cache dir, across processes too; whoever waited
	// finds the guest complete. A complete guest is never removed: running
	// microVMs use its files.
	unlock, err := lockDir(g.cacheDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return guest, nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := copyFile(filepath.Join(g.boot, "vmlinuz-"+kv), filepath.Join(tmp, "vmlinuz")); err != nil {
		return nil, err
	}
	if err := g.writeInitrd(kv, filepath.Join(tmp, "initrd.gz")); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	if err := g.writeRootfs(ctx, ref, agent, tmp); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	os.WriteFile(filepath.Join(tmp, "complete"), nil, 0o644)
	os.RemoveAll(dir) // an incomplete leftover only: complete ones returned above
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return guest, nil
}

// ProbeBoot returns a kernel and initramfs that boot without any image: with
// aether.probe=1 on the command line the initramfs prints AETHER-PROBE-OK
// and powers off. Runtimes boot it to find out whether hardware
// virtualization really works here. Built once per kernel.
func (g *GuestBuilder) ProbeBoot() (*Guest, error) {
	kv, err := g.kernelVersion()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(g.cacheDir, "probe-"+kv)
	guest := &Guest{Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz"), KernelVersion: kv}
	if _, err := os.Stat(guest.Initrd); err == nil {
		return guest, nil
	}
	unlock, err := lockDir(g.cacheDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(guest.Initrd); err == nil {
		return guest, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := copyFile(filepath.Join(g.boot, "vmlinuz-"+kv), guest.Kernel); err != nil {
		return nil, err
	}
	if err := g.writeInitrd(kv, guest.Initrd+".tmp"); err != nil {
		return nil, err
	}
	return guest, os.Rename(guest.Initrd+".tmp", guest.Initrd)
}

// Vmlinux returns the uncompressed ELF kernel of a guest (Firecracker boots
// no bzImage), extracted once per kernel version.
func (g *GuestBuilder) Vmlinux(guest *Guest) (string, error) {
	path := filepath.Join(g.cacheDir, "vmlinux-"+guest.KernelVersion)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	unlock, err := lockDir(g.cacheDir)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := ExtractVmlinux(guest.Kernel, path+".tmp"); err != nil {
		return "", err
	}
	return path, os.Rename(path+".tmp", path)
}

// moduleOrder resolves GuestModules and their dependencies from modules.dep,
// dependencies first.
func (g *GuestBuilder) moduleOrder(kv string) ([]string, error) {
	f, err := os.Open(filepath.Join(g.modules, kv, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps, byName := map[string][]string{}, map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		file, rest, _ := strings.Cut(sc.Text(), ":")
		deps[file] = strings.Fields(rest)
		name := strings.TrimSuffix(filepath.Base(file), ".ko")
		byName[strings.ReplaceAll(name, "-", "_")] = file
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		// modules.dep lists the full closure, deepest last: load in reverse.
		for i := len(deps[file]) - 1; i >= 0; i-- {
			visit(deps[file][i])
		}
		order = append(order, file)
	}
	for _, m := range GuestModules {
		if file, ok := byName[m]; ok {
			visit(file)
		}
	}
	return order, nil
}

func (g *GuestBuilder) writeInitrd(kv, path string) error {
	order, err := g.moduleOrder(kv)
	if err != nil {
		return err
	}
	bb, err := os.ReadFile(g.busybox)
	if err != nil {
		return fmt.Errorf("static busybox (apt-get install busybox-static): %w", err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	cw := &cpioWriter{w: zw}
	for _, d := range []string{"bin", "modules", "proc", "sys", "dev", "newroot"} {
		cw.Dir(d)
	}
	cw.File("bin/busybox", 0o755, bb)
	cw.Symlink("bin/sh", "busybox")
	cw.File("init", 0o755, []byte(guestInit))
	var names []string
	for _, file := range order {
		data, err := os.ReadFile(filepath.Join(g.modules, kv, file))
		if err != nil {
			return err
		}
		name := filepath.Base(file)
		cw.File("modules/"+name, 0o644, data)
		names = append(names, name)
	}
	cw.File("modules/order", 0o644, []byte(strings.Join(names, "\n")+"\n"))
	if err := cw.Close(); err != nil {
		return err
	}
	zw.Close()
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// writeRootfs exports the image's filesystem, adds the agent and makes an
// ext4 image of it with room to work in.
func (g *GuestBuilder) writeRootfs(ctx context.Context, ref string, agent []byte, tmp string) error {
	root := filepath.Join(tmp, "root")
	os.MkdirAll(root, 0o755)
	defer os.RemoveAll(root)
	c, err := g.b.cli.ContainerCreate(ctx, &container.Config{Image: ref, Entrypoint: []string{"/bin/true"}}, nil, nil, nil, "")
	if err != nil {
		return err
	}
	defer g.b.cli.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true})
	rc, err := g.b.cli.ContainerExport(ctx, c.ID)
	if err != nil {
		return err
	}
	defer rc.Close()
	untar := exec.CommandContext(ctx, "tar", "--numeric-owner", "-x", "-C", root)
	untar.Stdin = rc
	if out, err := untar.CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v: %s", err, out)
	}
	os.MkdirAll(filepath.Join(root, ".aether"), 0o755)
	if err := os.WriteFile(filepath.Join(root, ".aether", "aether-agent"), agent, 0o755); err != nil {
		return err
	}
	img := filepath.Join(tmp, "rootfs.ext4")
	// A sparse 4 GiB file: only what is written takes disk space.
	if err := exec.CommandContext(ctx, "truncate", "-s", "4G", img).Run(); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "aether-root", "-d", root, img).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4: %v: %s", err, out)
	}
	return nil
}

// LinkOrCopy makes dst the file src: a hard link where both are on one
// filesystem, else a copy. A file already at dst is replaced.
func LinkOrCopy(src, dst string) error {
	os.Remove(dst)
	if os.Link(src, dst) == nil {
		return nil
	}
	return copyFile(src, dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// lockDir takes an exclusive flock on dir/.lock until the returned func runs.
func lockDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// committedDir is where Commit keeps the guest named ref.
func (g *GuestBuilder) committedDir(ref string) string {
	h := sha256.Sum256([]byte(ref))
	return filepath.Join(g.cacheDir, "committed", hex.EncodeToString(h[:8]))
}

func (g *GuestBuilder) committed(ref string) (*Guest, bool) {
	dir := g.committedDir(ref)
	kv, err := os.ReadFile(filepath.Join(dir, "complete"))
	if err != nil {
		return nil, false
	}
	return &Guest{Dir: dir, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz"),
		Rootfs: filepath.Join(dir, "rootfs.ext4"), KernelVersion: string(kv)}, true
}

// Commit saves a sandbox's root disk (rootfs, an ext4 image the caller
// made and hands over) as the guest named ref, booting from's kernel and
// initramfs; Build(ref) returns it from then on. A guest already under ref
// is replaced (see Remove for what happens to its files).
func (g *GuestBuilder) Commit(ref string, from *Guest, rootfs string) (*Guest, error) {
	unlock, err := lockDir(g.cacheDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	dir := g.committedDir(ref)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for src, dst := range map[string]string{from.Kernel: "vmlinuz", from.Initrd: "initrd.gz"} {
		if err := LinkOrCopy(src, filepath.Join(tmp, dst)); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(rootfs, filepath.Join(tmp, "rootfs.ext4")); err != nil {
		return nil, err
	}
	os.WriteFile(filepath.Join(tmp, "ref"), []byte(ref), 0o644)
	os.WriteFile(filepath.Join(tmp, "complete"), []byte(from.KernelVersion), 0o644)
	g.retire(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	guest, _ := g.committed(ref)
	return guest, nil
}

// Remove forgets the committed guest ref. Its files may still back running
// sandboxes' disks, so they move aside and go when Collect finds them unused.
func (g *GuestBuilder) Remove(ref string) error {
	unlock, err := lockDir(g.cacheDir)
	if err != nil {
		return err
	}
	defer unlock()
	g.retire(g.committedDir(ref))
	return nil
}

func (g *GuestBuilder) retire(dir string) {
	if _, err := os.Stat(dir); err == nil {
		os.Rename(dir, fmt.Sprintf("%s.removed-%d", dir, time.Now().UnixNano()))
	}
}

// Collect deletes removed guests whose files no sandbox uses (inUse says
// whether a path is some sandbox's disk backing or kernel).
func (g *GuestBuilder) Collect(inUse func(dir string) bool) {
	dirs, _ := filepath.Glob(filepath.Join(g.cacheDir, "committed", "*.removed-*"))
	for _, d := range dirs {
		if !inUse(d) {
			os.RemoveAll(d)
		}
	}
}
