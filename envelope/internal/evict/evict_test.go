package evict

import (
	"errors"
	"slices"
	"sync"
	"testing"
)

// recorder counts onRemove calls per key.
type recorder struct {
	mu      sync.Mutex
	removed map[int]int
}

func newRecorder() *recorder { return &recorder{removed: map[int]int{}} }

func (r *recorder) onRemove(k, _ int) {
	r.mu.Lock()
	r.removed[k]++
	r.mu.Unlock()
}

func (r *recorder) count(k int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removed[k]
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.removed {
		n += c
	}
	return n
}

var bounded = []string{LRU, LFU, SLRU, TinyLFU}

func TestUnknownPolicy(t *testing.T) {
	for _, p := range []string{"fifo", "LRU2", "random"} {
		if _, err := New[int, int](p, 10, nil); !errors.Is(err, ErrUnknownPolicy) {
			t.Errorf("New(%q) = %v, want ErrUnknownPolicy", p, err)
		}
	}
	for _, p := range bounded {
		if _, err := New[int, int](p, 0, nil); err == nil {
			t.Errorf("New(%q, capacity 0) succeeded", p)
		}
	}
	for _, p := range []string{"", "simple", "SIMPLE", " lru ", "TinyLFU"} {
		if _, err := New[int, int](p, 5, nil); err != nil {
			t.Errorf("New(%q) = %v", p, err)
		}
	}
}

// Every policy: Add keeps the present value, the size stays bounded, and
// every value that was added leaves through onRemove exactly once.
func TestAccounting(t *testing.T) {
	for _, p := range append([]string{Simple, None}, bounded...) {
		t.Run(p, func(t *testing.T) {
			r := newRecorder()
			s, err := New(p, 10, r.onRemove)
			if err != nil {
				t.Fatal(err)
			}
			added := 0
			for k := range 100 {
				v, ok := s.Add(k, k)
				if !ok || v != k {
					t.Fatalf("Add(%d) = %d, %v", k, v, ok)
				}
				added++
				if p != Simple && p != None {
					if n := s.Len(); n > 10 {
						t.Fatalf("Len = %d after %d adds, capacity 10", n, added)
					}
				}
			}
			if p == Simple && s.Len() != 100 {
				t.Fatalf("simple store has %d entries, want 100", s.Len())
			}
			// Adding a present key keeps the present value.
			for _, k := range s.Keys() {
				if v, ok := s.Add(k, -1); ok || v != k {
					t.Fatalf("Add of present key %d = %d, %v; want the present value", k, v, ok)
				}
				if v, ok := s.Get(k); !ok || v != k {
					t.Fatalf("Get(%d) = %d, %v", k, v, ok)
				}
			}
			present := len(s.Keys())
			if r.total()+present != added {
				t.Fatalf("%d removed + %d present != %d added", r.total(), present, added)
			}
			s.Close()
			if s.Len() != 0 {
				t.Errorf("Len after Close = %d", s.Len())
			}
			for k := range 100 {
				if c := r.count(k); c != 1 {
					t.Fatalf("value %d removed %d times, want 1", k, c)
				}
			}
		})
	}
}

func TestRemove(t *testing.T) {
	for _, p := range append([]string{Simple}, bounded...) {
		t.Run(p, func(t *testing.T) {
			r := newRecorder()
			s, _ := New(p, 10, r.onRemove)
			s.Add(1, 1)
			s.Add(2, 2)
			if !s.Remove(1) || s.Remove(1) || s.Remove(3) {
				t.Fatal("Remove results wrong")
			}
			if _, ok := s.Get(1); ok {
				t.Fatal("removed key still present")
			}
			if r.count(1) != 1 || r.count(2) != 0 {
				t.Fatalf("onRemove counts %v", r.removed)
			}
		})
	}
}

// LRU evicts the least recently used entry.
func TestLRUOrder(t *testing.T) {
	r := newRecorder()
	s, _ := New(LRU, 3, r.onRemove)
	s.Add(1, 1)
	s.Add(2, 2)
	s.Add(3, 3)
	s.Get(1)    // 2 is now the least recent
	s.Add(4, 4) // evicts 2
	if r.count(2) != 1 || r.count(1) != 0 {
		t.Fatalf("LRU evicted %v, want 2", r.removed)
	}
}

// LFU evicts the least frequently used entry, the least recent among ties.
func TestLFUOrder(t *testing.T) {
	r := newRecorder()
	s, _ := New(LFU, 3, r.onRemove)
	s.Add(1, 1)
	s.Add(2, 2)
	s.Add(3, 3)
	for range 3 {
		s.Get(1)
	}
	s.Get(2)
	s.Get(3)
	s.Get(2) // frequencies: 1→4, 2→3, 3→2
	s.Add(4, 4)
	if r.count(3) != 1 {
		t.Fatalf("LFU evicted %v, want 3", r.removed)
	}
	s.Add(5, 5) // 4 and 5 have frequency 1; 4 is older
	if r.count(4) != 1 {
		t.Fatalf("LFU evicted %v, want 4 among the ties", r.removed)
	}
	s.Remove(1)
	s.Remove(2)
	s.Remove(5)
	s.Add(6, 6)
	if v, ok := s.Get(6); !ok || v != 6 {
		t.Fatal("LFU lost an entry after emptying")
	}
}

// SLRU protects entries used twice from a scan of entries used once.
func TestSLRUScanResistance(t *testing.T) {
	r := newRecorder()
	s, _ := New(SLRU, 5, r.onRemove)
	s.Add(1, 1)
	s.Add(2, 2)
	s.Get(1)
	s.Get(2) // 1 and 2 are protected
	for k := 100; k < 120; k++ {
		s.Add(k, k)
	}
	if r.count(1) != 0 || r.count(2) != 0 {
		t.Fatalf("SLRU evicted a protected entry during a scan: %v", r.removed)
	}
	if s.Len() != 5 {
		t.Fatalf("Len = %d", s.Len())
	}
}

// TinyLFU keeps frequently used entries over one-hit wonders.
func TestTinyLFUPrefersFrequent(t *testing.T) {
	r := newRecorder()
	s, _ := New(TinyLFU, 50, r.onRemove)
	// Fill the cache first: W-TinyLFU starts counting frequencies once the
	// cache is half full.
	for k := range 50 {
		s.Add(k, k)
	}
	for range 20 {
		for k := range 10 {
			s.Get(k)
		}
	}
	for k := 1000; k < 3000; k++ {
		s.Add(k, k)
	}
	kept := 0
	for k := range 10 {
		if _, ok := s.Get(k); ok {
			kept++
		}
	}
	if kept < 8 {
		t.Fatalf("only %d of 10 hot entries survived a scan of 2000", kept)
	}
	if n := s.Len(); n > 50 {
		t.Fatalf("Len = %d, capacity 50", n)
	}
	s.Close()
}

// Concurrent use keeps the accounting exact (run with -race).
func TestConcurrentAccounting(t *testing.T) {
	for _, p := range append([]string{Simple}, bounded...) {
		t.Run(p, func(t *testing.T) {
			r := newRecorder()
			s, _ := New(p, 16, r.onRemove)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var inserted []int
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 500 {
						k := g*1000 + i%50
						if _, ok := s.Add(k, k); ok {
							mu.Lock()
							inserted = append(inserted, k)
							mu.Unlock()
						}
						s.Get(k - 1)
						if i%7 == 0 {
							s.Remove(k - 3)
						}
					}
				}()
			}
			wg.Wait()
			s.Close()
			// Every successful insertion left through onRemove once.
			counts := map[int]int{}
			for _, k := range inserted {
				counts[k]++
			}
			keys := make([]int, 0, len(counts))
			for k := range counts {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if got := r.count(k); got != counts[k] {
					t.Fatalf("key %d inserted %d times, removed %d times", k, counts[k], got)
				}
			}
			if r.total() != len(inserted) {
				t.Fatalf("%d removals for %d insertions", r.total(), len(inserted))
			}
		})
	}
}
