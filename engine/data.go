package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// isDataFile reports whether a bundle file is a data file: as in an OPA bundle, a file
// named data.json, data.yaml or data.yml, whose document is placed at the path of its
// directory (payout/data.json holding {"x": 1} is data.payout.x). Other JSON and YAML files
// (reason_codes.yaml, CEL case files, golden cases) are not data.
func isDataFile(p string) bool {
	switch path.Base(p) {
	case "data.json", "data.yaml", "data.yml":
		return true
	}
	return false
}

// BundleData returns the data document of the bundle in fsys: its data files (data.json,
// data.yaml, data.yml) merged, each at its directory's path, as Load gives it to the
// policies; nil when the bundle has none. It returns a *LoadError as Load does for a data
// file it would refuse.
func BundleData(fsys fs.FS) (map[string]any, error) {
	var files []string
	if err := WalkBundle(fsys, func(p string) {
		if isDataFile(p) {
			files = append(files, p)
		}
	}); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, nil
	}
	data, _, probs := loadData(fsys, files)
	if len(probs) > 0 {
		return nil, &LoadError{Problems: probs}
	}
	return data, nil
}

// loadData reads the data files of a bundle and merges them into one document, each at its
// directory's path, and returns their contents too (they are part of every policy's hash). Every problem names its file: a file that does not parse, a document
// that is not an object, mapping keys that are not strings, or two files that give one key
// different values.
func loadData(fsys fs.FS, files []string) (map[string]any, map[string][]byte, []Problem) {
	var problems []Problem
	root := map[string]any{}
	contents := make(map[string][]byte, len(files))
	owner := map[string]string{} // a merged path → the file that set it
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			problems = append(problems, Problem{File: f, Message: fmt.Sprintf("read data file: %v", err)})
			continue
		}
		contents[f] = b
		doc, err := decodeData(f, b)
		if err != nil {
			problems = append(problems, Problem{File: f, Message: err.Error()})
			continue
		}
		if doc == nil && path.Ext(f) != ".json" {
			continue // an empty YAML file
		}
		obj, ok := doc.(map[string]any)
		if !ok {
			// OPA refuses an empty or null data.json too: the bundle would not replay there.
			problems = append(problems, Problem{File: f, Message: "data file must hold an object"})
			continue
		}
		if _, policies := obj["verdict"]; (path.Dir(f) == "." && policies) || strings.HasPrefix(path.Dir(f)+"/", "verdict/") {
			problems = append(problems, Problem{File: f, Message: "data may not be set under verdict: that is the namespace of the policies and their library"})
			continue
		}
		at, prefix := root, ""
		if dir := path.Dir(f); dir != "." {
			for _, seg := range strings.Split(dir, "/") {
				prefix += "/" + seg
				next, ok := at[seg].(map[string]any)
				if !ok {
					if _, taken := at[seg]; taken {
						problems = append(problems, Problem{File: f, Message: fmt.Sprintf("data at %s is already set by %s", prefix, ownerOf(owner, prefix))})
						at = nil
						break
					}
					next = map[string]any{}
					at[seg] = next
				}
				at = next
			}
		}
		if at != nil {
			if conflict := mergeData(at, obj, prefix, f, owner); conflict != "" {
				problems = append(problems, Problem{File: f, Message: conflict})
			}
		}
	}
	return root, contents, problems
}

// mergeData merges src into dst: objects key by key, anything else only where dst has no
// value. It returns a description of the first conflict, or "".
func mergeData(dst, src map[string]any, prefix, file string, owner map[string]string) string {
	for k, v := range src {
		p := prefix + "/" + k
		cur, exists := dst[k]
		if !exists {
			dst[k] = v
			owner[p] = file
			continue
		}
		a, aObj := cur.(map[string]any)
		b, bObj := v.(map[string]any)
		if !aObj || !bObj {
			return fmt.Sprintf("data at %s is already set by %s", p, ownerOf(owner, p))
		}
		if c := mergeData(a, b, p, file, owner); c != "" {
			return c
		}
	}
	return ""
}

// ownerOf returns the file that set the data at p or at the nearest path above it.
func ownerOf(owner map[string]string, p string) string {
	for ; p != ""; p = p[:strings.LastIndex(p, "/")] {
		if f, ok := owner[p]; ok {
			return f
		}
	}
	return "another data file"
}

// decodeData parses a JSON or YAML data file into JSON values (objects as map[string]any,
// numbers as float64), as OPA reads it.
func decodeData(name string, b []byte) (any, error) {
	if strings.HasSuffix(name, ".json") {
		dec := json.NewDecoder(bytes.NewReader(b))
		var v any
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			return nil, fmt.Errorf("data file is not valid JSON: %v", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errors.New("data file is not valid JSON: data after the document")
		}
		return v, nil
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("data file is not valid YAML: %v", err)
	}
	// YAML allows what JSON does not: a JSON round trip keeps what OPA would see, and
	// refuses a mapping with keys that are not strings (decoded as map[any]any).
	j, err := json.Marshal(v)
	var typeErr *json.UnsupportedTypeError
	switch {
	case errors.As(err, &typeErr):
		return nil, errors.New("data file: mapping keys must be strings")
	case err != nil: // .nan, .inf
		return nil, fmt.Errorf("data file: %v", err)
	}
	var out any
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, fmt.Errorf("data file: %v", err)
	}
	return out, nil
}

// overlay returns base with over laid on top, objects merged key by key and over winning
// elsewhere; neither is modified.
func overlay(base, over map[string]any) map[string]any {
	if len(over) == 0 {
		return base
	}
	if len(base) == 0 {
		return over
	}
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		b, bObj := out[k].(map[string]any)
		o, oObj := v.(map[string]any)
		if bObj && oObj {
			out[k] = overlay(b, o)
			continue
		}
		out[k] = v
	}
	return out
}
