package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// ClientConfig configures calls to a vendor's API.
type ClientConfig struct {
	Provider string        // for errors
	BaseURL  string        // e.g. https://api.eu.onfido.com/v3.6; tests point it at a local server
	Timeout  time.Duration // per attempt; default 10 s
	Retries  int           // extra attempts after the first on network errors, 429 and 5xx; default 3
	Backoff  time.Duration // first retry delay, doubled each time with jitter; default 200 ms
	// Auth sets the vendor's authentication headers on each attempt (it may sign the
	// request, so it sees the final body).
	Auth func(req *http.Request, body []byte) error
	// IdempotencyHeader is the header the vendor reads an idempotency key from
	// (default "Idempotency-Key").
	IdempotencyHeader string
	HTTPClient        *http.Client
}

// Client calls a vendor's JSON API with per-attempt timeouts, retries with exponential
// backoff and jitter on network errors, 429 and 5xx (honouring Retry-After up to 30 s),
// and an idempotency key on every attempt of a write, so a retried create opens one
// session at the vendor.
type Client struct{ c ClientConfig }

// NewClient returns a Client with defaults filled in.
func NewClient(c ClientConfig) *Client {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Retries < 0 {
		c.Retries = 0
	} else if c.Retries == 0 {
		c.Retries = 3
	}
	if c.Backoff <= 0 {
		c.Backoff = 200 * time.Millisecond
	}
	if c.IdempotencyHeader == "" {
		c.IdempotencyHeader = "Idempotency-Key"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	return &Client{c: c}
}

// Do sends method path with the JSON encoding of in (nil for no body) and decodes a 2xx
// answer into out (nil to discard). idemKey, when set, is sent in the idempotency header.
// A non-2xx answer after retries is an *APIError; the vendor's body is not included in the
// error, as it may carry personal data.
func (cl *Client) Do(ctx context.Context, op, method, path string, in any, out any, idemKey string) error {
	if cl.c.BaseURL == "" {
		return fmt.Errorf("%s %s: %w", cl.c.Provider, op, ErrNotConfigured)
	}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", cl.c.Provider, op, err)
		}
		body = b
	}
	var lastErr error
	delay := cl.c.Backoff
	for attempt := 0; attempt <= cl.c.Retries; attempt++ {
		if attempt > 0 {
			wait := delay/2 + rand.N(delay/2+1)
			if ra, ok := lastErr.(*retryAfter); ok && ra.d > 0 {
				wait = min(ra.d, 30*time.Second)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%s %s: %w (last: %v)", cl.c.Provider, op, ctx.Err(), unwrapRetry(lastErr))
			case <-t.C:
			}
			delay *= 2
		}
		retry, err := cl.once(ctx, op, method, path, body, out, idemKey)
		if err == nil {
			return nil
		}
		lastErr = err
		if !retry {
			break
		}
	}
	return unwrapRetry(lastErr)
}

type retryAfter struct {
	err error
	d   time.Duration
}

func (r *retryAfter) Error() string { return r.err.Error() }

func unwrapRetry(err error) error {
	if r, ok := err.(*retryAfter); ok {
		return r.err
	}
	return err
}

func (cl *Client) once(ctx context.Context, op, method, path string, body []byte, out any, idemKey string) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, cl.c.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, cl.c.BaseURL+path, rd)
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", cl.c.Provider, op, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set(cl.c.IdempotencyHeader, idemKey)
	}
	if cl.c.Auth != nil {
		if err := cl.c.Auth(req, body); err != nil {
			return false, fmt.Errorf("%s %s: %w", cl.c.Provider, op, err)
		}
	}
	resp, err := cl.c.HTTPClient.Do(req)
	if err != nil {
		// Network errors and per-attempt timeouts are retried; the caller's own
		// cancellation ends the loop at the next wait.
		return true, fmt.Errorf("%s %s: %w", cl.c.Provider, op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) //nolint:errcheck // draining for reuse
		apiErr := &APIError{Provider: cl.c.Provider, Op: op, Status: resp.StatusCode}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			var d time.Duration
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
				d = time.Duration(s) * time.Second
			}
			return true, &retryAfter{err: apiErr, d: d}
		}
		return false, apiErr
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) //nolint:errcheck // draining for reuse
		return false, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("%s %s: decode answer: %w", cl.c.Provider, op, err)
	}
	return false, nil
}
