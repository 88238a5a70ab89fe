// Package memstore is an in-memory envelope.Metastore, for tests, examples
// and one-shot runs whose keys need not outlive the process.
//
// Unlike Asherah's in-memory metastore, records are copied in and out, so
// changing a loaded record never changes the store. A Store is safe for
// concurrent use. It implements the optional envelope.Revoker,
// envelope.Lister and envelope.Deleter interfaces, and
// envelope.RegionSuffixer when made WithRegionSuffix.
package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// Store keeps key records in a map.
type Store struct {
	mu     sync.RWMutex
	rows   map[string]map[int64]*envelope.EnvelopeKeyRecord
	suffix string
}

var (
	_ envelope.Metastore      = (*Store)(nil)
	_ envelope.Revoker        = (*Store)(nil)
	_ envelope.Lister         = (*Store)(nil)
	_ envelope.Deleter        = (*Store)(nil)
	_ envelope.RegionSuffixer = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// WithRegionSuffix makes GetRegionSuffix return suffix, as Asherah's
// DynamoDB metastore does with its region, so that factories using this
// store write region-suffixed key ids.
func WithRegionSuffix(suffix string) Option {
	return func(s *Store) { s.suffix = suffix }
}

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{rows: make(map[string]map[int64]*envelope.EnvelopeKeyRecord)}
	for _, o := range opts {
		if o != nil {
			o(s)
		}
	}
	return s
}

// GetRegionSuffix returns the suffix set by WithRegionSuffix, or "".
func (s *Store) GetRegionSuffix() string { return s.suffix }

func clone(id string, rec *envelope.EnvelopeKeyRecord) *envelope.EnvelopeKeyRecord {
	c := *rec
	c.ID = id
	c.EncryptedKey = slices.Clone(rec.EncryptedKey)
	if rec.ParentKeyMeta != nil {
		pm := *rec.ParentKeyMeta
		c.ParentKeyMeta = &pm
	}
	return &c
}

func notFound(id string, created int64) error {
	return fmt.Errorf("memstore: %s (created %d): %w", id, created, envelope.ErrNotFound)
}

// Load returns a copy of the record (id, created), or an error wrapping
// envelope.ErrNotFound.
func (s *Store) Load(ctx context.Context, id string, created int64) (*envelope.EnvelopeKeyRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.rows[id][created]
	if !ok {
		return nil, notFound(id, created)
	}
	return clone(id, rec), nil
}

// LoadLatest returns a copy of the record of id with the greatest created
// time, or an error wrapping envelope.ErrNotFound.
func (s *Store) LoadLatest(ctx context.Context, id string) (*envelope.EnvelopeKeyRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var latest *envelope.EnvelopeKeyRecord
	var latestCreated int64
	for created, rec := range s.rows[id] {
		if latest == nil || created > latestCreated {
			latest, latestCreated = rec, created
		}
	}
	if latest == nil {
		return nil, fmt.Errorf("memstore: %s: %w", id, envelope.ErrNotFound)
	}
	return clone(id, latest), nil
}

// Store saves a copy of rec under (id, created) unless a record is there,
// in which case it returns an error wrapping envelope.ErrKeyExists.
func (s *Store) Store(ctx context.Context, id string, created int64, rec *envelope.EnvelopeKeyRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("memstore: nil record for %s", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byCreated, ok := s.rows[id]
	if !ok {
		byCreated = make(map[int64]*envelope.EnvelopeKeyRecord)
		s.rows[id] = byCreated
	}
	if _, ok := byCreated[created]; ok {
		return fmt.Errorf("memstore: %s (created %d): %w", id, created, envelope.ErrKeyExists)
	}
	byCreated[created] = clone(id, rec)
	return nil
}

// Revoke sets the Revoked flag of the record (id, created).
func (s *Store) Revoke(ctx context.Context, id string, created int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.rows[id][created]
	if !ok {
		return notFound(id, created)
	}
	rec.Revoked = true
	return nil
}

// List returns copies of the records whose id starts with idPrefix, sorted
// by id and created time.
func (s *Store) List(ctx context.Context, idPrefix string) ([]*envelope.EnvelopeKeyRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	var out []*envelope.EnvelopeKeyRecord
	for id, byCreated := range s.rows {
		if !strings.HasPrefix(id, idPrefix) {
			continue
		}
		for _, rec := range byCreated {
			out = append(out, clone(id, rec))
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b *envelope.EnvelopeKeyRecord) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return compareInt(a.Created, b.Created)
	})
	return out, nil
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Delete removes every record of id and returns how many there were.
func (s *Store) Delete(ctx context.Context, id string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.rows[id])
	delete(s.rows, id)
	return n, nil
}
