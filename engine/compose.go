package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
)

// LoadVersion compiles a published policy version from its files (path → content), in
// memory, exactly as Load compiles a bundle directory, and stamps every policy of the
// result with hash, the version's BundleHash, so that decisions name the published
// version they ran. An empty hash is computed from the files.
//
// It returns a *LoadError naming file:line for files that do not compile (as Load), for
// paths that are not valid slash-separated relative paths, and when hash does not match
// the files.
func LoadVersion(hash string, files map[string][]byte, opts ...LoadOption) (*PolicySet, error) {
	fsys, err := FilesFS(files)
	if err != nil {
		return nil, err
	}
	if sum := BundleHash(files); hash == "" {
		hash = sum
	} else if hash != sum {
		return nil, &LoadError{Problems: []Problem{{Message: fmt.Sprintf("version %s: its files hash to %s", hash, sum)}}}
	}
	set, err := Load(fsys, opts...)
	if err != nil {
		return nil, err
	}
	// The set is new and not yet shared: stamping it in place is safe.
	for _, p := range set.policies {
		p.Hash = hash
	}
	return set, nil
}

// Compose returns a new PolicySet serving base's policies, except for the actions of
// overrides, each served by its given policy (typically taken from a set built by
// LoadVersion): so that payout runs the version activated for it while login keeps
// the default bundle. An override may add an action base lacks. Versions and hashes are
// kept as they are; base and the policies are shared, not copied, and not changed.
//
// It returns an error when base is nil, an override is nil or compiled for another
// action, or would let payout fail open.
func Compose(base *PolicySet, overrides map[string]*Policy) (*PolicySet, error) {
	if base == nil {
		return nil, errors.New("compose policies: no base set")
	}
	out := &PolicySet{policies: maps.Clone(base.policies), loadedAt: time.Now()}
	for _, action := range slices.Sorted(maps.Keys(overrides)) {
		p := overrides[action]
		switch {
		case p == nil:
			return nil, fmt.Errorf("compose policies: action %q: no policy", action)
		case p.Action != action:
			return nil, fmt.Errorf("compose policies: action %q: policy is compiled for %q", action, p.Action)
		case p.Action == "payout" && p.FailMode == FailOpen:
			return nil, fmt.Errorf(`compose policies: action "payout" may not fail open`)
		}
		out.policies[action] = p
	}
	return out, nil
}

// FilesFS returns a read-only fs.FS holding files (path → content), for Load. Paths
// are slash-separated and relative ("payout/payout.rego"), as fs.ValidPath requires;
// directories are implied by them. The map and its contents must not change while the
// FS is in use.
//
// It returns a *LoadError naming every invalid path, and a path that is both a file and
// the directory of another.
func FilesFS(files map[string][]byte) (fs.FS, error) {
	m := &memFS{files: make(map[string][]byte, len(files)), dirs: map[string][]fs.DirEntry{".": nil}}
	var problems []Problem
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		if !fs.ValidPath(name) || name == "." {
			problems = append(problems, Problem{File: name, Message: "invalid path: want a slash-separated relative path without . or .. elements"})
			continue
		}
		m.files[name] = files[name]
	}
	for _, name := range names {
		if _, ok := m.files[name]; !ok {
			continue
		}
		child, entry := name, fs.DirEntry(memEntry{name: path.Base(name), size: int64(len(files[name]))})
		for dir := path.Dir(name); ; dir = path.Dir(dir) {
			if _, isFile := m.files[dir]; isFile {
				problems = append(problems, Problem{File: dir, Message: "path is both a file and the directory of " + name})
				break
			}
			_, seen := m.dirs[dir]
			if !seen || !slices.ContainsFunc(m.dirs[dir], func(e fs.DirEntry) bool { return e.Name() == path.Base(child) }) {
				m.dirs[dir] = append(m.dirs[dir], entry)
			}
			if dir == "." || seen {
				break
			}
			child, entry = dir, memEntry{name: path.Base(dir), dir: true}
		}
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	for _, entries := range m.dirs {
		slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
	return m, nil
}

// memFS is FilesFS's file system: files by path, and the sorted entries of every
// directory the paths imply.
type memFS struct {
	files map[string][]byte
	dirs  map[string][]fs.DirEntry
}

var (
	_ fs.ReadFileFS = (*memFS)(nil)
	_ fs.ReadDirFS  = (*memFS)(nil)
	_ fs.StatFS     = (*memFS)(nil)
)

func (m *memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if b, ok := m.files[name]; ok {
		return &memFile{entry: memEntry{name: path.Base(name), size: int64(len(b))}, data: b}, nil
	}
	if entries, ok := m.dirs[name]; ok {
		return &memDir{entry: memEntry{name: path.Base(name), dir: true}, entries: entries}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (m *memFS) ReadFile(name string) ([]byte, error) {
	if b, ok := m.files[name]; ok && fs.ValidPath(name) {
		return slices.Clone(b), nil
	}
	return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
}

func (m *memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if entries, ok := m.dirs[name]; ok && fs.ValidPath(name) {
		return slices.Clone(entries), nil
	}
	return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
}

func (m *memFS) Stat(name string) (fs.FileInfo, error) {
	f, err := m.Open(name)
	if err != nil {
		return nil, err
	}
	return f.Stat()
}

// memEntry is both the fs.DirEntry and the fs.FileInfo of a memFS file or directory.
type memEntry struct {
	name string
	size int64
	dir  bool
}

func (e memEntry) Name() string               { return e.name }
func (e memEntry) Size() int64                { return e.size }
func (e memEntry) IsDir() bool                { return e.dir }
func (e memEntry) ModTime() time.Time         { return time.Time{} }
func (e memEntry) Sys() any                   { return nil }
func (e memEntry) Info() (fs.FileInfo, error) { return e, nil }

func (e memEntry) Mode() fs.FileMode {
	if e.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

func (e memEntry) Type() fs.FileMode { return e.Mode().Type() }

type memFile struct {
	entry memEntry
	data  []byte
	off   int
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.entry, nil }
func (f *memFile) Close() error               { return nil }

func (f *memFile) Read(b []byte) (int, error) {
	if f.off >= len(f.data) {
		return 0, io.EOF
	}
	n := copy(b, f.data[f.off:])
	f.off += n
	return n, nil
}

type memDir struct {
	entry   memEntry
	entries []fs.DirEntry
	off     int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return d.entry, nil }
func (d *memDir) Close() error               { return nil }

func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.entry.name, Err: fs.ErrInvalid}
}

func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return slices.Clone(rest[:n]), nil
}
