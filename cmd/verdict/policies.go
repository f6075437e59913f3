package main

import (
	"fmt"
	"os"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
)

// loadPolicies compiles the bundle in dir, or the embedded bundle when dir is empty.
func loadPolicies(dir string) (*engine.PolicySet, error) {
	if dir == "" {
		return engine.Load(policies.Bundle())
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("policies: %s is not a directory", dir)
	}
	return engine.Load(os.DirFS(dir))
}
