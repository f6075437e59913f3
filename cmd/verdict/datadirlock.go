package main

import "fmt"

// dataDirInUseError is lockDataDir's answer when a verdict serve holds the directory (only
// where flock(2) is available: elsewhere lockDataDir never refuses).
type dataDirInUseError struct {
	dir    string // absolute
	holder string // " (pid N)", or "" when the lock file does not say
}

func (e *dataDirInUseError) Error() string {
	return fmt.Sprintf("data directory %s is in use by another verdict serve%s: its embedded store, "+
		"in-process counters and caches belong to one server; stop that one or give this one another --data-dir", e.dir, e.holder)
}
