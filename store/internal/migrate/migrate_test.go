package migrate

import (
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_lists.sql": {Data: []byte("B")},
		"m/0001_init.sql":  {Data: []byte("A")},
		"m/README.md":      {Data: []byte("ignored")},
	}
	got, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	want := []Migration{{Version: 1, Name: "init", SQL: "A"}, {Version: 2, Name: "lists", SQL: "B"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"no prefix":    {"m/init.sql": {}},
		"zero version": {"m/0000_init.sql": {}},
		"duplicate":    {"m/0001_a.sql": {}, "m/001_b.sql": {}},
	} {
		if _, err := Load(fsys, "m"); err == nil {
			t.Errorf("%s: Load succeeded, want an error", name)
		}
	}
}
