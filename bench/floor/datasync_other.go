//go:build !linux

package main

import "os"

// datasync flushes the file (fsync where fdatasync is not offered).
func datasync(f *os.File) error { return f.Sync() }
