package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/verdict-engine/verdict/engine"
	"github.com/verdict-engine/verdict/policies"
)

// loadPolicies compiles the bundle in dir, or the embedded bundle when dir is empty. Its
// errors start with setting, where dir came from ("--policies DIR" or "VERDICT_POLICIES=DIR",
// see policiesSetting), so that a bad bundle is traced to the flag or variable that named it.
func loadPolicies(dir, setting string) (*engine.PolicySet, error) {
	if dir == "" {
		return engine.Load(policies.Bundle())
	}
	if setting == "" {
		setting = "policies " + dir
	}
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such directory", setting)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", setting)
	}
	set, err := engine.Load(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	return set, nil
}

// policiesSetting says where a command's --policies value came from: "--policies DIR" when
// the flag was given, "VERDICT_POLICIES=DIR" when the variable supplied it.
func policiesSetting(fset *flag.FlagSet, dir string) string {
	given := false
	fset.Visit(func(f *flag.Flag) { given = given || f.Name == "policies" })
	if !given { // the flag's default is VERDICT_POLICIES

		return "VERDICT_POLICIES=" + dir
	}
	return "--policies " + dir
}
