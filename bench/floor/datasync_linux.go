package main

import (
	"os"
	"syscall"
)

// datasync flushes the file's data, as SQLite and Postgres do on Linux (fdatasync).
func datasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
