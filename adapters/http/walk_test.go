package http_test

import (
	"io/fs"
	"strings"

	"github.com/verdict-engine/verdict/policies"
)

// fsWalkRego calls fn with every non-test Rego file of the embedded bundle.
func fsWalkRego(fn func(name string, src []byte)) error {
	b := policies.Bundle()
	return fs.WalkDir(b, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		src, err := fs.ReadFile(b, p)
		if err == nil {
			fn(p, src)
		}
		return err
	})
}
