package sensor

import (
	"sync"
	"time"
)

// deliveredWaiters are the channels of Delivered's callers that the reader
// has not released yet.
type deliveredWaiters struct {
	mu     sync.Mutex
	chans  []chan struct{}
	closed bool // the reader has ended: release at once
}

// Delivered returns a channel closed once the reader has found the ring
// empty after this call: every record the kernel side wrote before it has
// been read and its event handed to Events (or Attaches, …), or is held
// for the rest of its load's records. It is a "delivered up to now" mark
// for a consumer that learns of a kernel event through another channel (the
// BPF_PROG_TEST_RUN bracket) and must first see what the hooks reported of
// it. The reader may block handing an event to a full Events channel:
// keep receiving from it while waiting. Closed at once after Close.
func (s *Sensor) Delivered() <-chan struct{} {
	ch := make(chan struct{})
	d := &s.delivered
	d.mu.Lock()
	if d.closed {
		close(ch)
	} else {
		d.chans = append(d.chans, ch)
	}
	d.mu.Unlock()
	if s.wait != nil {
		s.wait.setDeadline(time.Now()) // wake a parked reader (it rearms its deadline)
	}
	return ch
}

// take hands the reader the waiters registered so far, before a read that
// may find the ring empty.
func (d *deliveredWaiters) take() []chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.chans
	d.chans = nil
	return c
}

// putBack returns waiters whose read found a record: they wait for a
// later empty ring.
func (d *deliveredWaiters) putBack(c []chan struct{}) {
	if len(c) == 0 {
		return
	}
	d.mu.Lock()
	d.chans = append(c, d.chans...)
	d.mu.Unlock()
}

// release closes waiters taken before a read that found the ring empty.
func release(c []chan struct{}) {
	for _, ch := range c {
		close(ch)
	}
}

// end releases every waiter, now and later: the reader is gone.
func (d *deliveredWaiters) end() {
	d.mu.Lock()
	c := d.chans
	d.chans, d.closed = nil, true
	d.mu.Unlock()
	release(c)
}
