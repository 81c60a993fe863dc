//go:build linux && amd64

package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestExeReadOnlySegmentsKeepsOnlyTheExecutablesReadOnlyMappings(t *testing.T) {
	maps := `00400000-00c98000 r-xp 00000000 fe:01 123 /usr/bin/ebpf sentry
00c98000-015ec000 r--p 00898000 fe:01 123 /usr/bin/ebpf sentry
015ec000-019d4000 rw-p 011ec000 fe:01 123 /usr/bin/ebpf sentry
019d4000-01a00000 rw-p 00000000 00:00 0
7f00000000-7f00001000 r--p 00000000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f00002000-7f00003000 r--s 00000000 fe:01 123 /usr/bin/ebpf sentry
7f00004000-7f00005000 r-xp 00000000 fe:01 124 /usr/bin/ebpf sentry (deleted)
`
	got, err := exeReadOnlySegments(strings.NewReader(maps), "/usr/bin/ebpf sentry")
	if err != nil {
		t.Fatal(err)
	}
	want := []exeSegment{{0x400000, 0xc98000, "r-xp"}, {0xc98000, 0x15ec000, "r--p"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("segment %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := exeReadOnlySegments(strings.NewReader("zz-00 r-xp 0 0 1 /x\n"), "/x"); err == nil {
		t.Error("a malformed range was accepted")
	}
}

// releaseStartupPages must lower the process's file-backed RSS (this test
// binary's code and read-only data, resident after the test framework's
// start) and leave it running: the pages fault back in as it goes on.
func TestReleaseStartupPagesLowersFileBackedRSS(t *testing.T) {
	before := rssFileKB(t)
	n, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if n <= 0 {
		t.Fatalf("released %d bytes", n)
	}
	if after >= before {
		t.Errorf("RssFile %d kB before, %d kB after releasing %d bytes", before, after, n)
	}
	t.Logf("RssFile %d kB -> %d kB (released %d MB of mappings)", before, after, n>>20)
}

func rssFileKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
