// Package fleet keeps a fleet-wide inventory of the BPF programs the agents
// report: it consumes the prog_load events of the JetStream stream and keeps,
// per program fingerprint (sha256), the hosts that loaded it, when, under
// which names and by which loaders, in a JetStream KV bucket (no other
// database). A fingerprint new to the whole fleet raises fleet_first_seen.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebpf-sentry/ebpf-sentry/output"
)

// Entry is the inventory of one fingerprint.
type Entry struct {
	SHA256    string   `json:"sha256"`
	Names     []string `json:"names"`      // at most MaxNames
	ProgTypes []string `json:"prog_types"` // at most MaxNames
	Loaders   []string `json:"loaders"`    // loader executables, at most MaxLoaders
	// LoaderIDs are the loaders' identities (inode, device, sha256 of the
	// executable, from the events' loader.exe_*), at most MaxLoaders: a
	// path names a file, these say which one.
	LoaderIDs []LoaderID `json:"loader_ids,omitempty"`
	// Fingerprints are the kernel's instruction hashes of the program
	// (prog.insn_hash, what allowlists and lock blocks name), at most
	// MaxNames.
	Fingerprints []string `json:"fingerprints,omitempty"`
	// Omitted counts names, types, loaders and hosts' sightings not
	// recorded because their list (or the host map) was full: an entry stays far below a KV value's size limit
	// however many names a program is loaded under.
	Omitted   uint64               `json:"omitted,omitempty"`
	FirstSeen time.Time            `json:"first_seen"`
	LastSeen  time.Time            `json:"last_seen"`
	Hosts     map[string]*HostSeen `json:"hosts"` // at most MaxHosts: the first seen
}

// HostSeen is one host's history with a fingerprint.
type HostSeen struct {
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Loads     uint64    `json:"loads"`
}

// LoaderID is the identity of a loader executable.
type LoaderID struct {
	Exe    string `json:"exe,omitempty"`
	Inode  uint64 `json:"inode,omitempty"`
	Dev    uint32 `json:"dev,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

func (l LoaderID) less(o LoaderID) bool {
	if l.SHA256 != o.SHA256 {
		return l.SHA256 < o.SHA256
	}
	if l.Exe != o.Exe {
		return l.Exe < o.Exe
	}
	if l.Dev != o.Dev {
		return l.Dev < o.Dev
	}
	return l.Inode < o.Inode
}

// addLoaderID adds id to the sorted list like addSorted.
func addLoaderID(list []LoaderID, id LoaderID, most int, omitted *uint64) []LoaderID {
	if id.Inode == 0 && id.SHA256 == "" {
		return list // a path alone is in Loaders
	}
	i := sort.Search(len(list), func(i int) bool { return !list[i].less(id) })
	if i < len(list) && list[i] == id {
		return list
	}
	if len(list) >= most {
		*omitted++
		return list
	}
	return append(list[:i], append([]LoaderID{id}, list[i:]...)...)
}

// MaxNames, MaxLoaders and MaxHosts bound the lists (and the host map) of
// one entry.
const (
	MaxNames   = 64
	MaxLoaders = 64
	MaxHosts   = 64
)

// Sighting is what the inventory takes from one prog_load event.
type Sighting struct {
	EventID, Host, SHA256, Name, ProgType, LoaderExe string
	Time                                             time.Time
	Fingerprint                                      string   // prog.insn_hash, "" when absent
	Loader                                           LoaderID // the loader's identity, zero when unknown
	// hostToken is the subject token an agent publishes the event's
	// host under (output.NATSSubjectToken of the raw host).
	hostToken string
}

var (
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
	insnHash  = regexp.MustCompile(`^0x[0-9a-f]{16}$`)
)

// ErrNoFingerprint: a prog_load without prog.sha256 (its capture failed).
var ErrNoFingerprint = errors.New("prog_load event without a fingerprint")

// ParseProgLoad reads a sighting from a native prog_load event's JSON.
func ParseProgLoad(data []byte) (Sighting, error) {
	var ev struct {
		Event  string    `json:"event"`
		ID     string    `json:"id"`
		Host   string    `json:"host"`
		Time   time.Time `json:"time"`
		Loader *struct {
			Exe       string `json:"exe"`
			ExeInode  uint64 `json:"exe_inode"`
			ExeDev    uint32 `json:"exe_dev"`
			ExeSHA256 string `json:"exe_sha256"`
		} `json:"loader"`
		Prog *struct {
			Name     string `json:"name"`
			SHA256   string `json:"sha256"`
			InsnHash string `json:"insn_hash"`
			Type     struct {
				Name string `json:"name"`
			} `json:"type"`
		} `json:"prog"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return Sighting{}, fmt.Errorf("event: %w", err)
	}
	if ev.Event != string(output.KindProgLoad) {
		return Sighting{}, fmt.Errorf("event kind %q: want prog_load", ev.Event)
	}
	if ev.Prog == nil || ev.Prog.SHA256 == "" {
		return Sighting{}, ErrNoFingerprint
	}
	if !sha256Hex.MatchString(ev.Prog.SHA256) {
		return Sighting{}, fmt.Errorf("prog.sha256 %q: want 64 lowercase hex digits", output.Escape(ev.Prog.SHA256))
	}
	if ev.Host == "" || ev.Time.IsZero() {
		return Sighting{}, errors.New("event without host or time")
	}
	s := Sighting{EventID: ev.ID, Host: output.Escape(ev.Host), SHA256: ev.Prog.SHA256, Name: output.Escape(ev.Prog.Name),
		ProgType: output.Escape(ev.Prog.Type.Name), Time: ev.Time, hostToken: output.NATSSubjectToken(ev.Host)}
	if ev.Prog.InsnHash != "" {
		if !insnHash.MatchString(ev.Prog.InsnHash) {
			return Sighting{}, fmt.Errorf("prog.insn_hash %q: want 0x and 16 lowercase hex digits", output.Escape(ev.Prog.InsnHash))
		}
		s.Fingerprint = ev.Prog.InsnHash
	}
	if l := ev.Loader; l != nil {
		s.LoaderExe = output.Escape(l.Exe)
		if l.ExeSHA256 != "" && !sha256Hex.MatchString(l.ExeSHA256) {
			return Sighting{}, fmt.Errorf("loader.exe_sha256 %q: want 64 lowercase hex digits", output.Escape(l.ExeSHA256))
		}
		s.Loader = LoaderID{Exe: s.LoaderExe, Inode: l.ExeInode, Dev: l.ExeDev, SHA256: l.ExeSHA256}
	}
	return s, nil
}

// Inventory is the KV bucket of entries, one key per fingerprint.
type Inventory struct{ KV jetstream.KeyValue }

// OpenInventory opens (creating, with replicas copies) the bucket.
func OpenInventory(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Inventory, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1, Replicas: max(replicas, 1)})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("inventory bucket %s: %w", bucket, err)
	}
	return &Inventory{KV: kv}, nil
}

// addSorted adds s to the sorted list unless it is there or the list holds
// most already (then it counts one in *omitted).
func addSorted(list []string, s string, most int, omitted *uint64) []string {
	if s == "" {
		return list
	}
	i := sort.SearchStrings(list, s)
	if i < len(list) && list[i] == s {
		return list
	}
	if len(list) >= most {
		*omitted++
		return list
	}
	return append(list[:i], append([]string{s}, list[i:]...)...)
}

func merge(e *Entry, s Sighting) {
	e.Names = addSorted(e.Names, s.Name, MaxNames, &e.Omitted)
	e.ProgTypes = addSorted(e.ProgTypes, s.ProgType, MaxNames, &e.Omitted)
	e.Loaders = addSorted(e.Loaders, s.LoaderExe, MaxLoaders, &e.Omitted)
	e.LoaderIDs = addLoaderID(e.LoaderIDs, s.Loader, MaxLoaders, &e.Omitted)
	e.Fingerprints = addSorted(e.Fingerprints, s.Fingerprint, MaxNames, &e.Omitted)
	if e.FirstSeen.IsZero() || s.Time.Before(e.FirstSeen) {
		e.FirstSeen = s.Time
	}
	if s.Time.After(e.LastSeen) {
		e.LastSeen = s.Time
	}
	if e.Hosts == nil {
		e.Hosts = map[string]*HostSeen{}
	}
	h := e.Hosts[s.Host]
	if h == nil {
		if len(e.Hosts) >= MaxHosts {
			e.Omitted++
			return
		}
		h = &HostSeen{FirstSeen: s.Time, LastSeen: s.Time}
		e.Hosts[s.Host] = h
	}
	if s.Time.Before(h.FirstSeen) {
		h.FirstSeen = s.Time
	}
	if s.Time.After(h.LastSeen) {
		h.LastSeen = s.Time
	}
	h.Loads++
}

// Observe adds s to the inventory and reports whether its fingerprint was
// new to the fleet. Concurrent consumers are safe: the entry is created
// with Create (only one wins) and updated with compare-and-set on its
// revision, retried on conflict.
func (inv *Inventory) Observe(ctx context.Context, s Sighting) (bool, error) {
	for attempt := 0; attempt < 100; attempt++ {
		cur, err := inv.KV.Get(ctx, s.SHA256)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			e := &Entry{SHA256: s.SHA256}
			merge(e, s)
			b, _ := json.Marshal(e)
			if _, err := inv.KV.Create(ctx, s.SHA256, b); err == nil {
				return true, nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return false, err
			}
			continue // another consumer created it meanwhile
		}
		if err != nil {
			return false, err
		}
		var e Entry
		if err := json.Unmarshal(cur.Value(), &e); err != nil {
			return false, fmt.Errorf("inventory entry %s: %w", s.SHA256, err)
		}
		merge(&e, s)
		b, _ := json.Marshal(&e)
		if _, err := inv.KV.Update(ctx, s.SHA256, b, cur.Revision()); err == nil {
			return false, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
				return false, err
			}
		}
	}
	return false, fmt.Errorf("inventory entry %s: too many concurrent updates", s.SHA256)
}

// Get returns the entry of one fingerprint.
func (inv *Inventory) Get(ctx context.Context, sha string) (*Entry, error) {
	v, err := inv.KV.Get(ctx, sha)
	if err != nil {
		return nil, err
	}
	var e Entry
	if err := json.Unmarshal(v.Value(), &e); err != nil {
		return nil, fmt.Errorf("inventory entry %s: %w", sha, err)
	}
	return &e, nil
}

// Find returns every entry keep accepts, by fingerprint.
func (inv *Inventory) Find(ctx context.Context, keep func(*Entry) bool) ([]*Entry, error) {
	keys, err := inv.KV.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for k := range keys.Keys() {
		e, err := inv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if keep(e) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SHA256 < out[j].SHA256 })
	return out, nil
}

// Consume reads the prog_load events of stream (subjects PREFIX.*.prog_load)
// with the durable consumer durable, adds each to inv and calls firstSeen
// for a fingerprint new to the fleet. A message carries one event or a pack
// of several (output.NATSMessageEvents); it is acked once the inventory
// holds all its events, and when one of them cannot be stored it is nak'ed
// and redelivered. Each event is counted once: the ids of the last
// recentEvents events this call stored are remembered (per host), and an
// event seen again (the rest of a redelivered pack, or a copy the stream
// stored twice because it came back after the de-duplication window) is
// skipped. Across a crash of the consumer it is at-least-once: a message
// stored but not yet acked is replayed, which adds one load to a count but
// never a second first-seen, since Create lets only one consumer create an
// entry. Events that cannot be read are acked, logged by skip and not
// retried. A stream that does not exist yet is waited for (reported once
// through skip). It returns when ctx ends.
func Consume(ctx context.Context, js jetstream.JetStream, stream, prefix, durable string, inv *Inventory,
	firstSeen func(Sighting), skip func(error)) error {
	var c jetstream.Consumer
	for reported := false; ; reported = true {
		var err error
		c, err = js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: durable, FilterSubject: prefix + ".*." + string(output.KindProgLoad),
			AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy, AckWait: 30 * time.Second,
		})
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("consumer %s on %s: %w", durable, stream, err)
		}
		// No agent created the stream yet: wait for it (reported once).
		if !reported {
			skip(fmt.Errorf("stream %s does not exist yet: waiting for it", stream))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	seen := newRecent(recentEvents)
	for ctx.Err() == nil {
		batch, err := c.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			skip(err)
			continue
		}
		for m := range batch.Messages() {
			evs, err := output.NATSMessageEvents(m.Headers(), m.Data())
			if err != nil {
				skip(fmt.Errorf("%s: %w", m.Subject(), err))
				_ = m.Ack()
				continue
			}
			failed := false
			for _, data := range evs {
				s, err := ParseProgLoad(data)
				if err != nil {
					skip(fmt.Errorf("%s: %w", m.Subject(), err))
					continue
				}
				if want := prefix + "." + s.hostToken + "." + string(output.KindProgLoad); m.Subject() != want {
					// The subject is what NATS permissions can bind to an
					// agent's credentials; the host field is only text.
					skip(fmt.Errorf("%s: event of host %q not on its host's subject %s: skipped", m.Subject(), s.Host, want))
					continue
				}
				key := s.Host + "\x00" + s.EventID
				if s.EventID != "" && seen.has(key) {
					continue
				}
				first, err := inv.Observe(ctx, s)
				if err != nil {
					skip(err)
					failed = true
					break
				}
				if s.EventID != "" {
					seen.add(key)
				}
				if first {
					firstSeen(s)
				}
			}
			if failed {
				_ = m.Nak()
				continue
			}
			_ = m.Ack()
		}
	}
	return nil
}

// recentEvents is how many event ids Consume remembers to count each event
// once.
const recentEvents = 1 << 16

// recent is a bounded set of strings: the oldest goes when it is full.
type recent struct {
	set  map[string]struct{}
	ring []string
	next int
}

func newRecent(n int) *recent {
	return &recent{set: make(map[string]struct{}, n), ring: make([]string, n)}
}

func (r *recent) has(k string) bool { _, ok := r.set[k]; return ok }

func (r *recent) add(k string) {
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = k
	r.set[k] = struct{}{}
	r.next = (r.next + 1) % len(r.ring)
}
