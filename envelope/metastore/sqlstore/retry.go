package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"
)

// RetryPolicy says how a Store retries a call that failed with a
// transient error: a connection that was refused, reset or dropped, a
// server that is starting up or shutting down, too many connections, a
// deadlock, a lock wait timeout or a serialization failure. Duplicate keys,
// missing rows, SQL errors and a cancelled or expired context are never
// retried. Between tries the Store sleeps for a random time between half
// and all of BaseDelay·2^(try-1), capped at MaxDelay ("equal jitter"), so
// that processes that failed together do not retry together.
//
// A Store that has retried an insert whose first try did reach the
// database may see its own row as a duplicate: it then returns
// envelope.ErrKeyExists, on which the session factory re-reads the key,
// which is the right outcome.
type RetryPolicy struct {
	// Attempts is the number of tries, the first one included.
	// 0 means 4; 1 disables retries.
	Attempts int
	// BaseDelay is the backoff before the second try. 0 means 50 ms.
	BaseDelay time.Duration
	// MaxDelay caps each backoff. 0 means 2 s.
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 4
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 50 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 2 * time.Second
	}
	return p
}

// WithRetry sets the retry policy (default: RetryPolicy{}, that is 4 tries,
// 50 ms base delay, 2 s cap).
func WithRetry(p RetryPolicy) Option {
	return func(s *Store) error {
		if p.Attempts < 0 || p.BaseDelay < 0 || p.MaxDelay < 0 {
			return errors.New("sqlstore: negative value in RetryPolicy")
		}
		s.retry = p.withDefaults()
		return nil
	}
}

// WithLogger logs each retry (operation, try, cause; never key material)
// at level Warn. The default is no logging.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) error { s.log = l; return nil }
}

// retryError is the last error of a call that was tried more than once.
type retryError struct {
	err      error
	attempts int
}

func (e *retryError) Error() string {
	return fmt.Sprintf("%v (gave up after %d tries)", e.err, e.attempts)
}

func (e *retryError) Unwrap() error { return e.err }

// do runs fn, retrying it according to the store's policy while it fails
// with a transient error and ctx is live.
func (s *Store) do(ctx context.Context, op string, fn func() error) error {
	p := s.retry
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !s.transient(err) || ctx.Err() != nil {
			if err != nil && attempt > 1 {
				return &retryError{err, attempt}
			}
			return err
		}
		if attempt >= p.Attempts {
			if attempt > 1 {
				return &retryError{err, attempt}
			}
			return err
		}
		d := min(p.MaxDelay, p.BaseDelay<<(attempt-1))
		d = d/2 + rand.N(d/2+1)
		if s.log != nil {
			s.log.Warn("sqlstore: transient database error, retrying", "op", op, "try", attempt, "backoff", d, "error", err.Error())
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return &retryError{err, attempt}
		case <-t.C:
		}
	}
}

// PostgreSQL SQLSTATEs and MySQL error numbers that are worth a retry.
var (
	transientSQLStates = map[string]bool{
		"40001": true, // serialization_failure
		"40P01": true, // deadlock_detected
		"53300": true, // too_many_connections
		"57P01": true, // admin_shutdown
		"57P02": true, // crash_shutdown
		"57P03": true, // cannot_connect_now (starting up)
	}
	transientMySQLNumbers = map[uint16]bool{
		1040: true, // ER_CON_COUNT_ERROR, too many connections
		1053: true, // ER_SERVER_SHUTDOWN
		1205: true, // ER_LOCK_WAIT_TIMEOUT
		1213: true, // ER_LOCK_DEADLOCK
	}
)

// transient reports whether err is worth retrying (see RetryPolicy).
func (s *Store) transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if isDuplicate(s.dialect, err) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	for _, e := range chain(err) {
		if st, ok := e.(interface{ SQLState() string }); ok {
			code := st.SQLState()
			if transientSQLStates[code] || strings.HasPrefix(code, "08") { // class 08: connection exception
				return true
			}
		}
		if n, ok := mysqlNumber(e); ok && transientMySQLNumbers[n] {
			return true
		}
	}
	// go-sql-driver/mysql's ErrInvalidConn, which it returns when it cannot
	// tell whether a statement ran ("invalid connection").
	return s.dialect == MySQL && strings.Contains(err.Error(), "invalid connection")
}
