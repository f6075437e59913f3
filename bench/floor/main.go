// Command floor serves POST /v1/decide with a fixed decision and nothing else, so that the
// load generator can measure what this host's HTTP stack, scheduler and disk cost before
// Verdict does any work: the floor under Verdict's own latency at the same rate.
//
//	go run ./bench/floor -addr 127.0.0.1:18080            # answers at once
//	go run ./bench/floor -addr 127.0.0.1:18080 -fsync     # writes 4 KB and fdatasyncs first
//	go run ./bench/loadgen -url http://127.0.0.1:18080/v1/decide -rate 1000 -duration 20s
//
// `make bench` measures it beside Verdict and OPA (bench/compare -floor).
//
// With -fsync each request writes -size bytes into a file in -dir and syncs it before the
// answer, one request at a time: the cost of one durable write per decision with no
// database at all. The file is a ring of 16 MiB written once at start, so the writes
// overwrite allocated blocks as a database's write-ahead log does and the sync carries
// no file-size change.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/gofiber/fiber/v2"
)

const ringSize = 16 << 20

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "floor:", err)
		}
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18080", "listen address")
	withSync := fs.Bool("fsync", false, "write and fdatasync -size bytes before each answer")
	size := fs.Int("size", 4096, "bytes written per request with -fsync")
	dir := fs.String("dir", os.TempDir(), "directory for the -fsync file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size <= 0 || *size > ringSize {
		return fmt.Errorf("-size %d: want 1 to %d bytes", *size, ringSize)
	}
	var w *ring
	if *withSync {
		var err error
		if w, err = openRing(filepath.Join(*dir, fmt.Sprintf("verdict-floor-%d.ring", os.Getpid())), *size); err != nil {
			return err
		}
		defer w.close()
	}
	answer := []byte(`{"decision_id":"00000000-0000-7000-8000-000000000000","outcome":"approve","score":0,"reasons":[],"policy":{"action":"payout","version":"floor","hash":""},"signals_unavailable":[],"latency_us":0}`)
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	app.Post("/v1/decide", func(c *fiber.Ctx) error {
		if w != nil {
			if err := w.write(); err != nil {
				return fiber.NewError(fiber.StatusServiceUnavailable, err.Error())
			}
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(answer)
	})
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	go func() { <-stop; _ = app.Shutdown() }()
	fmt.Fprintf(os.Stderr, "floor: serving %s (fsync %v)\n", *addr, *withSync)
	return app.Listen(*addr)
}

// ring is a preallocated file written round-robin, one synced block per request.
type ring struct {
	mu   sync.Mutex
	f    *os.File
	path string
	buf  []byte
	off  int64
}

func openRing(path string, size int) (*ring, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	r := &ring{f: f, path: path, buf: make([]byte, size)}
	zero := make([]byte, 1<<20)
	for n := 0; n < ringSize; n += len(zero) {
		if _, err := f.Write(zero); err != nil {
			r.close()
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *ring) write() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off+int64(len(r.buf)) > ringSize {
		r.off = 0
	}
	if _, err := r.f.WriteAt(r.buf, r.off); err != nil {
		return err
	}
	r.off += int64(len(r.buf))
	return datasync(r.f)
}

func (r *ring) close() {
	_ = r.f.Close()
	_ = os.Remove(r.path)
}
