package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/verdict-engine/verdict/store"
)

// classify wraps err for operation op, mapping pgx and server errors to the store's
// classes. It is the only place that inspects them.
//
//   - the caller's context cancelled: wrapped as is (the caller went away; not an outage);
//   - deadlines, timeouts, failed connections, a server shutting down, out of resources,
//     a lock or statement timeout, a read-only server (failover): store.ErrUnavailable;
//   - unique violations: store.ErrConflict;
//   - anything else: wrapped as is.
func classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidRecord) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505": // unique_violation
			return fmt.Errorf("%s: %w: %w", op, store.ErrConflict, err)
		case unavailableCode(pgErr.Code):
			return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	if connectionError(err) {
		return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unavailableCode reports whether a SQLSTATE means the server cannot serve the request now,
// as opposed to refusing it.
func unavailableCode(code string) bool {
	switch code {
	case "55P03", // lock_not_available (lock_timeout)
		"25006": // read_only_sql_transaction: connected to a standby after a failover
		return true
	}
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "08", // connection exception
		"53", // insufficient resources: too many connections, disk full, out of memory
		"57", // operator intervention: statement timeout, admin shutdown, cannot connect now
		"58": // system error: I/O error
		return true
	}
	return false
}

// connectionError reports whether err comes from reaching the server rather than from it.
func connectionError(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		pgconn.SafeToRetry(err)
}
