package sensor

import "syscall"

// retries marks a load that repeats its thread's previous load after that
// one failed with EAGAIN: the verifier gives up when a signal is pending
// for the loader, and libraries (libbpf, cilium/ebpf) retry the same
// program at once. Each attempt is a BPF_PROG_LOAD of its own and is
// reported, but a retry says so (Event.Retry, Event.RetryOf), so that one
// interrupted load does not read as several failures.
type retries struct {
	last map[uint32]attempt // by loader tid: its last load, while that one failed with EAGAIN
}

type attempt struct {
	loadID uint64
	hash   uint64
	name   string
	n      uint32 // attempts so far that failed with EAGAIN
}

// maxTracked bounds the table: a thread whose EAGAIN is never followed by
// another load would otherwise stay forever.
const maxTracked = 4096

// mark sets ev.Retry and ev.RetryOf when ev repeats its thread's last load,
// and remembers ev when it failed with EAGAIN. Call it in delivery order.
func (r *retries) mark(ev *Event) {
	if ev.Program == nil || ev.Program.Loader == nil || ev.Program.Loader.TID == 0 {
		return
	}
	tid := ev.Program.Loader.TID
	prev, ok := r.last[tid]
	if ok && ev.InsnHash != 0 && prev.hash == ev.InsnHash && prev.name == ev.Program.Name {
		ev.Retry, ev.RetryOf = prev.n, prev.loadID
	} else {
		prev = attempt{}
	}
	if ev.Outcome.Result != ResultFailed || ev.Outcome.Errno != int(syscall.EAGAIN) {
		delete(r.last, tid)
		return
	}
	if r.last == nil {
		r.last = map[uint32]attempt{}
	}
	if _, known := r.last[tid]; !known && len(r.last) >= maxTracked {
		clear(r.last)
	}
	r.last[tid] = attempt{loadID: ev.LoadID, hash: ev.InsnHash, name: ev.Program.Name, n: prev.n + 1}
}
