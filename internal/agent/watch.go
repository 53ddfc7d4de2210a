package agent

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/aetherium/aetherium/internal/agentproto"
)

// Bounds of a watch stream.
const (
	// maxPendingEvents is how many events wait for the host; more are
	// dropped and reported as one overflow event.
	maxPendingEvents = 4096
	// coalesceWindow is how long events gather before they are sent;
	// repeats of one (op, path) within it are sent once.
	coalesceWindow = 50 * time.Millisecond
)

const watchMask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

// watcher is one watch stream's inotify instance. Directories are opened
// beneath the watched root one component at a time with O_NOFOLLOW and
// watched through their open descriptor, so a symlink (or a directory
// swapped for one) is never followed out of the tree.
type watcher struct {
	ino       *os.File
	root      int // descriptor of the watched directory
	recursive bool

	mu       sync.Mutex
	dirs     map[int32]string // watch descriptor → path relative to root
	pending  []agentproto.FileEvent
	seen     map[agentproto.FileEvent]bool
	overflow bool
	wake     chan struct{}
}

// watch serves the watch operation until the host closes the stream.
func (s *Server) watch(st *stream, req *agentproto.WatchRequest) {
	if !filepath.IsAbs(req.Path) {
		st.fail(agentproto.CodeInvalidArgument, fmt.Errorf("path %q is not absolute", req.Path))
		return
	}
	w, err := newWatcher(req.Path, req.Recursive)
	if err != nil {
		st.fail(fileErrCode(err), err)
		return
	}
	defer w.close()
	if st.writeJSON(agentproto.TypeResponse, agentproto.Response{}) != nil {
		return
	}
	go func() { // the host sends nothing: a read ends when it leaves
		var b [1]byte
		st.Read(b[:])
		w.ino.Close() // ends readEvents
	}()
	go w.readEvents()
	w.send(st)
}

func newWatcher(root string, recursive bool) (*watcher, error) {
	rfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "watch", Path: root, Err: err}
	}
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		unix.Close(rfd)
		return nil, err
	}
	w := &watcher{ino: os.NewFile(uintptr(ifd), "inotify"), root: rfd, recursive: recursive,
		dirs: make(map[int32]string), seen: make(map[agentproto.FileEvent]bool), wake: make(chan struct{}, 1)}
	if err := w.addTree("", false); err != nil {
		w.close()
		return nil, &os.PathError{Op: "watch", Path: root, Err: err}
	}
	return w, nil
}

func (w *watcher) close() {
	w.ino.Close()
	unix.Close(w.root)
}

// openBeneath opens the directory rel below the root without following any
// symlink on the way.
func (w *watcher) openBeneath(rel string) (int, error) {
	fd, err := unix.Dup(w.root)
	if err != nil || rel == "" {
		return fd, err
	}
	for _, name := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// addTree watches rel and, when recursive, every directory beneath it, at
// most agentproto.MaxWatches in all; beyond that it queues an overflow event.
// With announce (a directory that just appeared), it queues a create event
// for every entry it finds beneath rel: they were made, or moved in, before
// their directory was watched, and inotify will never tell of them.
func (w *watcher) addTree(rel string, announce bool) error {
	queue := []string{rel}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		subdirs, err := w.addDir(dir, announce)
		if err != nil {
			if dir == rel {
				return err
			}
			continue // vanished or replaced meanwhile
		}
		queue = append(queue, subdirs...)
	}
	return nil
}

// addDir watches one directory and returns its subdirectories (recursive
// watches only; symlinks are not directories here), announcing each entry
// when asked (addTree).
func (w *watcher) addDir(rel string, announce bool) ([]string, error) {
	w.mu.Lock()
	full := len(w.dirs) >= agentproto.MaxWatches
	w.mu.Unlock()
	if full {
		w.queue(agentproto.FileEvent{Op: agentproto.EventOverflow, Path: rel, Dir: true})
		return nil, nil
	}
	fd, err := w.openBeneath(rel)
	if err != nil {
		return nil, err
	}
	dir := os.NewFile(uintptr(fd), rel)
	defer dir.Close()
	// The open descriptor's /proc link names exactly the directory opened,
	// whatever happens to its path.
	wd, err := unix.InotifyAddWatch(int(w.ino.Fd()), "/proc/self/fd/"+strconv.Itoa(fd), watchMask)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.dirs[int32(wd)] = rel
	w.mu.Unlock()
	if !w.recursive {
		return nil, nil
	}
	var subdirs []string
	for {
		des, err := dir.ReadDir(256)
		for _, de := range des {
			entry, isDir := path.Join(rel, de.Name()), de.Type().IsDir() // d_type: a symlink is never IsDir
			if isDir {
				subdirs = append(subdirs, entry)
			}
			if announce {
				w.queue(agentproto.FileEvent{Op: agentproto.EventCreate, Path: entry, Dir: isDir})
			}
		}
		if err != nil || len(des) == 0 {
			return subdirs, nil
		}
	}
}

// readEvents turns inotify records into queued events until the inotify
// descriptor is closed.
func (w *watcher) readEvents() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.ino.Read(buf)
		if err != nil {
			w.mu.Lock()
			close(w.wake)
			w.wake = nil
			w.mu.Unlock()
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameEnd := off + unix.SizeofInotifyEvent + int(ev.Len)
			if nameEnd > n {
				break
			}
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:nameEnd], "\x00"))
			w.handle(ev.Wd, ev.Mask, name)
			off = nameEnd
		}
	}
}

func (w *watcher) handle(wd int32, mask uint32, name string) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.queue(agentproto.FileEvent{Op: agentproto.EventOverflow})
		return
	}
	w.mu.Lock()
	dir, ok := w.dirs[wd]
	if mask&unix.IN_IGNORED != 0 {
		delete(w.dirs, wd)
	}
	w.mu.Unlock()
	if !ok {
		return
	}
	isDir := mask&unix.IN_ISDIR != 0
	rel := path.Join(dir, name)
	if name == "" {
		rel = dir
	}
	var op string
	switch {
	case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
		op = agentproto.EventCreate
	case mask&unix.IN_MODIFY != 0:
		op = agentproto.EventWrite
	case mask&unix.IN_DELETE != 0:
		op = agentproto.EventRemove
	case mask&unix.IN_MOVED_FROM != 0:
		op = agentproto.EventRename
	case mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 && dir == "":
		// Only the root's own removal: a subdirectory's is reported by its parent.
		op, isDir = agentproto.EventRemove, true
		if mask&unix.IN_MOVE_SELF != 0 {
			op = agentproto.EventRename
		}
	default:
		return
	}
	w.queue(agentproto.FileEvent{Op: op, Path: rel, Dir: isDir})
	if op == agentproto.EventCreate && isDir && w.recursive {
		w.addTree(rel, true) // after its own event: a new tree reads top down
	}
}

// queue adds ev to the pending batch, once per batch, dropping it for an
// overflow event when the batch is full.
func (w *watcher) queue(ev agentproto.FileEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.seen[ev]:
		return
	case len(w.pending) >= maxPendingEvents || ev.Op == agentproto.EventOverflow:
		w.overflow = true
	default:
		w.seen[ev] = true
		w.pending = append(w.pending, ev)
	}
	if w.wake != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// take returns the pending batch (and an overflow event after it, if any).
func (w *watcher) take() ([]agentproto.FileEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	batch := w.pending
	if w.overflow {
		batch = append(batch, agentproto.FileEvent{Op: agentproto.EventOverflow})
	}
	w.pending, w.overflow = nil, false
	clear(w.seen)
	return batch, w.wake != nil
}

// send sends batches of events, one frame each, every coalesceWindow while
// there are any, until the inotify descriptor is closed.
func (w *watcher) send(st *stream) {
	w.mu.Lock()
	wake := w.wake
	w.mu.Unlock()
	for {
		_, open := <-wake
		if !open {
			return
		}
		time.Sleep(coalesceWindow)
		batch, live := w.take()
		for _, ev := range batch {
			if st.writeJSON(agentproto.TypeEvent, ev) != nil {
				w.ino.Close()
				return
			}
		}
		if !live {
			return
		}
	}
}
