package securebuf

import "sync"

// registry lists every live secret so that Purge can find them. Its lock is
// held only to link and unlink, never around a system call or a callback.
var registry struct {
	mu   sync.Mutex
	head *state
	n    int
}

func register(s *state) {
	registry.mu.Lock()
	s.next = registry.head
	if s.next != nil {
		s.next.prev = s
	}
	registry.head = s
	registry.n++
	registry.mu.Unlock()
}

func unregister(s *state) {
	registry.mu.Lock()
	if s.prev != nil {
		s.prev.next = s.next
	} else if registry.head == s {
		registry.head = s.next
	} else {
		registry.mu.Unlock() // never registered (failed seal)
		return
	}
	if s.next != nil {
		s.next.prev = s.prev
	}
	s.prev, s.next = nil, nil
	registry.n--
	registry.mu.Unlock()
}

// Purge closes every live secret of every Factory: each is wiped and
// unmapped, and any later use returns ErrClosed. Purge never blocks on a
// running callback: a secret that is being read is wiped by its last reader
// as it leaves. Scratch slots that are handed out are not touched (their
// owners are computing with them); they are wiped when released.
//
// Purge is for emergencies (a signal, a detected compromise). It never runs
// on its own: an allocation failure does not purge anything.
func Purge() {
	registry.mu.Lock()
	live := make([]*state, 0, registry.n)
	for s := registry.head; s != nil; s = s.next {
		live = append(live, s)
	}
	registry.mu.Unlock()
	for _, s := range live {
		s.purge()
	}
}

// liveSecrets is the number of registered secrets (for tests).
func liveSecrets() int {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return registry.n
}
