package evict

import (
	"container/list"
	"sync"
)

// slruStore is a segmented LRU. New entries enter the probation segment; a
// hit in probation promotes the entry to the protected segment, which holds
// at most 80 % of the capacity and demotes its least recent entry back to
// probation when full. Eviction takes the least recent probation entry (or
// the least recent protected one if probation is empty), so entries used
// once cannot flush entries used repeatedly.
type slruStore[K comparable, V any] struct {
	mu           sync.Mutex
	capacity     int
	protectedCap int
	items        map[K]*list.Element
	probation    *list.List
	protected    *list.List
	onRemove     func(K, V)
}

type slruItem[K comparable, V any] struct {
	key       K
	val       V
	protected bool
}

func newSLRU[K comparable, V any](capacity int, onRemove func(K, V)) *slruStore[K, V] {
	pc := capacity * 8 / 10
	if pc < 1 {
		pc = 1
	}
	return &slruStore[K, V]{
		capacity:     capacity,
		protectedCap: pc,
		items:        make(map[K]*list.Element),
		probation:    list.New(),
		protected:    list.New(),
		onRemove:     onRemove,
	}
}

func (s *slruStore[K, V]) Get(k K) (V, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	it := e.Value.(*slruItem[K, V])
	if it.protected {
		s.protected.MoveToFront(e)
		return it.val, true
	}
	// Promote from probation to protected.
	s.probation.Remove(e)
	it.protected = true
	s.items[k] = s.protected.PushFront(it)
	if s.protected.Len() > s.protectedCap {
		tail := s.protected.Back()
		ti := s.protected.Remove(tail).(*slruItem[K, V])
		ti.protected = false
		s.items[ti.key] = s.probation.PushFront(ti)
	}
	return it.val, true
}

func (s *slruStore[K, V]) Add(k K, v V) (V, bool) {
	var evicted *slruItem[K, V]
	s.mu.Lock()
	if e, ok := s.items[k]; ok {
		s.mu.Unlock()
		return e.Value.(*slruItem[K, V]).val, false
	}
	if len(s.items) >= s.capacity {
		victim := s.probation.Back()
		if victim == nil {
			victim = s.protected.Back()
		}
		evicted = s.unlinkLocked(victim)
	}
	s.items[k] = s.probation.PushFront(&slruItem[K, V]{key: k, val: v})
	s.mu.Unlock()
	if evicted != nil {
		s.onRemove(evicted.key, evicted.val)
	}
	return v, true
}

func (s *slruStore[K, V]) unlinkLocked(e *list.Element) *slruItem[K, V] {
	it := e.Value.(*slruItem[K, V])
	if it.protected {
		s.protected.Remove(e)
	} else {
		s.probation.Remove(e)
	}
	delete(s.items, it.key)
	return it
}

func (s *slruStore[K, V]) Remove(k K) bool {
	s.mu.Lock()
	e, ok := s.items[k]
	var it *slruItem[K, V]
	if ok {
		it = s.unlinkLocked(e)
	}
	s.mu.Unlock()
	if ok {
		s.onRemove(it.key, it.val)
	}
	return ok
}

func (s *slruStore[K, V]) Keys() []K {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]K, 0, len(s.items))
	for k := range s.items {
		keys = append(keys, k)
	}
	return keys
}

func (s *slruStore[K, V]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

func (s *slruStore[K, V]) Clear() {
	s.mu.Lock()
	old := s.items
	s.items = make(map[K]*list.Element)
	s.probation.Init()
	s.protected.Init()
	s.mu.Unlock()
	for _, e := range old {
		it := e.Value.(*slruItem[K, V])
		s.onRemove(it.key, it.val)
	}
}

func (s *slruStore[K, V]) Close() { s.Clear() }
