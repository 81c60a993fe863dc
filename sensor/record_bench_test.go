package sensor

import (
	"encoding/binary"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSmallLoadRecords is the agent's decoding of the fixed-size
// records every load sends (header, verdict, exit), per load, against the
// same bytes decoded with binary.Decode as before, in the same run:
//
//	go test -run '^$' -bench SmallLoadRecords -benchmem ./sensor
func BenchmarkSmallLoadRecords(b *testing.B) {
	recs := [][]byte{make([]byte, headerSize), make([]byte, verdictSize), make([]byte, exitSize)}
	for i, k := range []uint32{kindHeader, kindVerdict, kindExit} {
		binary.LittleEndian.PutUint32(recs[i], k)
	}
	b.Run("decode=copy", func(b *testing.B) {
		for b.Loop() {
			for _, r := range recs {
				if _, err := parseRecord(r); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("decode=binary.Decode", func(b *testing.B) {
		for b.Loop() {
			var h sentrySentryHeader
			var v sentrySentryVerdictRec
			var e sentrySentryExit
			for i, dst := range []any{&h, &v, &e} {
				if _, err := binary.Decode(recs[i], binary.LittleEndian, dst); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkExeIdentity is a load's exe identity for an executable already
// hashed (the test binary), against the open, fstat and close the cached
// path took before, in the same run:
//
//	go test -run '^$' -bench ExeIdentity -benchmem ./sensor
func BenchmarkExeIdentity(b *testing.B) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		b.Fatal(err)
	}
	pid := uint32(os.Getpid())
	var x exeHasher
	if x.hash(pid, st.Ino, kernelDev(st.Dev)) == "" {
		b.Fatal("no hash of the test binary")
	}
	b.Run("check=stat", func(b *testing.B) {
		for b.Loop() {
			if x.hash(pid, st.Ino, kernelDev(st.Dev)) == "" {
				b.Fatal("no hash")
			}
		}
	})
	b.Run("check=open+fstat", func(b *testing.B) {
		path := "/proc/" + strconv.Itoa(os.Getpid()) + "/exe"
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			var fst unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
}
