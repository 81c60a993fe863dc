package sensor

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"
	"unsafe"

	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

func kernelTableHash(t *testing.T, s *Sensor, idx uint32) [32]byte {
	t.Helper()
	var tbl sentryRulesTable
	if err := s.coll.Maps[sentryMapRules].Lookup(idx, &tbl); err != nil {
		t.Fatal(err)
	}
	return tableHash(&tbl)
}

func activeTable(t *testing.T, s *Sensor) uint32 {
	t.Helper()
	var c sentrySentryConfig
	if err := s.coll.Maps[sentryMapConfig].Lookup(uint32(0), &c); err != nil {
		t.Fatal(err)
	}
	return c.RulesActive
}

// A reload writes the table no judge uses and then switches to it; while a
// judge is still inside that table (held here the way a judge preempted
// mid-evaluation holds it: its rules_readers count), the reload is refused
// and neither the table nor the index changes, so that judge reads the
// table whole. Once it leaves, the reload goes through. Judges of real
// loads give their table back: the counts return to zero.
func TestReloadNeverRewritesATableBeingRead(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	active := activeTable(t, s)
	idle := 1 - active
	before := kernelTableHash(t, s, idle)

	readers := s.coll.Maps[sentryMapRulesReaders]
	if err := readers.Put(idle, uint64(1)); err != nil {
		t.Fatal(err)
	}
	s.tableWait = time.Millisecond
	err := s.SetRules(&kernel.Rules{})
	if !errors.Is(err, ErrTableInUse) {
		t.Fatalf("reload while a judge holds table %d: %v, want ErrTableInUse", idle, err)
	}
	if got := kernelTableHash(t, s, idle); got != before {
		t.Fatalf("table %d was rewritten while a judge held it", idle)
	}
	if got := activeTable(t, s); got != active {
		t.Fatalf("active table %d after a refused reload, want %d", got, active)
	}
	if tamper, err := s.CheckIntegrity(); err != nil || len(tamper) != 0 {
		t.Fatalf("integrity after a refused reload: %+v %v", tamper, err)
	}

	if err := readers.Put(idle, uint64(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRules(&kernel.Rules{}); err != nil {
		t.Fatalf("reload with no judge in table %d: %v", idle, err)
	}
	if got := activeTable(t, s); got != idle {
		t.Fatalf("active table %d after the reload, want %d", got, idle)
	}
	if got := kernelTableHash(t, s, idle); got == before {
		t.Fatalf("table %d not rewritten by the reload", idle)
	}
	if tamper, err := s.CheckIntegrity(); err != nil || len(tamper) != 0 {
		t.Fatalf("integrity after the reload: %+v %v", tamper, err)
	}

	// Back to the test rules (into the other table): a blocked load is
	// judged by them, and every judge released its table.
	if err := s.SetRules(compiledTestRules(t)); err != nil {
		t.Fatal(err)
	}
	run := runLoader(t, "-insns", writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)), "-name", "se2eblk_swap")
	if !run.killed && !(len(run.results) == 1 && run.results[0].Ret < 0) {
		t.Fatalf("a blocked load after two switches was let through: %+v", run.results)
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
	if len(evs) != 1 || evs[0].RuleID != "e2e-block" {
		t.Fatalf("events %+v", evs)
	}
	for i := uint32(0); i < 2; i++ {
		var n uint64
		if err := readers.Lookup(i, &n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("table %d still has %d judges after the loads finished", i, n)
		}
	}
}

// tableHash and the table writes use the tables' memory as their encoding:
// that holds only while the generated types have no implicit padding. A
// table filled with a pattern hashes the same through binary.Append.
func TestRuleTableMemoryIsItsEncoding(t *testing.T) {
	check := func(name string, size, binSize int, mem, enc []byte) {
		t.Helper()
		if binSize != size {
			t.Fatalf("%s: binary.Size %d, memory %d: implicit padding", name, binSize, size)
		}
		if !bytes.Equal(mem, enc) {
			t.Fatalf("%s: memory differs from its little-endian encoding", name)
		}
	}
	var a sentryRulesTable
	fill(tableBytes(&a))
	enc, err := binary.Append(nil, binary.LittleEndian, &a)
	if err != nil {
		t.Fatal(err)
	}
	check("sensor table", int(unsafe.Sizeof(a)), binary.Size(&a), tableBytes(&a), enc)
	var k kernel.Table
	fill(tableBytes(&k))
	if enc, err = binary.Append(nil, binary.LittleEndian, &k); err != nil {
		t.Fatal(err)
	}
	check("rules/kernel table", int(unsafe.Sizeof(k)), binary.Size(&k), tableBytes(&k), enc)
	if sha256.Sum256(enc) != tableHash(&k) {
		t.Fatal("tableHash differs from the hash of the encoding")
	}
}

func fill(b []byte) {
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
}
