package insn

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadKallsymsForKeepsOnlyTheCalledSymbols(t *testing.T) {
	table := "ffffffff81000000 T _stext\n" +
		"ffffffff81000100 T bpf_map_lookup_elem\n" +
		"ffffffff81000100 T alias_of_lookup\n" +
		"ffffffff81000200 T __bpf_call_base\n" +
		"ffffffff81000300 t bpf_ktime_get_ns\n" +
		"ffffffffc0000000 t mod_func\t[mod]\n"
	ks, err := ReadKallsymsFor(strings.NewReader(table), map[int32]bool{-0x100: true, 0x100: true, 0x7fff0000: true})
	if err != nil {
		t.Fatal(err)
	}
	if base, ok := ks.CallBase(); !ok || base != 0xffffffff81000200 {
		t.Fatalf("call base %x %v", base, ok)
	}
	for addr, want := range map[uint64]string{0xffffffff81000100: "bpf_map_lookup_elem", 0xffffffff81000300: "bpf_ktime_get_ns"} {
		if got, _ := ks.Name(addr); got != want {
			t.Errorf("%x: %q, want %q (the first symbol at the address)", addr, got, want)
		}
	}
	if _, ok := ks.Name(0xffffffff81000000); ok {
		t.Error("kept a symbol no call points at")
	}
	if _, err := ReadKallsymsFor(strings.NewReader("zz T x\n"+"ffffffff81000200 T __bpf_call_base\n"), map[int32]bool{1: true}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad address gives %v, want an error naming line 1", err)
	}
}

// The selective read names what the full read names, on this host's table.
func TestReadKallsymsForAgreesWithReadKallsyms(t *testing.T) {
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Skip("no /proc/kallsyms")
	}
	full, err := ReadKallsyms(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	base, ok := full.CallBase()
	if !ok {
		t.Skip("kallsyms addresses hidden (not root)")
	}
	imms := map[int32]bool{}
	n := 0
	for addr := range full.byAddr {
		if d := int64(addr - base); d > -1<<31 && d < 1<<31 && n < 500 {
			imms[int32(d)] = true
			n++
		}
	}
	sel, err := ReadKallsymsFor(strings.NewReader(string(b)), imms)
	if err != nil {
		t.Fatal(err)
	}
	for imm := range imms {
		addr := base + uint64(int64(imm))
		want, _ := full.Name(addr)
		if got, _ := sel.Name(addr); got != want {
			t.Errorf("%x: selective %q, full %q", addr, got, want)
		}
	}
}

// parseHex reads what strconv.ParseUint(s, 16, 64) reads, and refuses what
// it refuses.
func TestParseHexAgreesWithParseUint(t *testing.T) {
	for _, s := range []string{"0", "ffffffff81000200", "FFFFffff81000200", "00000000000000000001", "ffffffffffffffff",
		"10000000000000000", "", "zz", "-1", "0x10", "1_0", "ffffffff8100020g"} {
		got, ok := parseHex([]byte(s))
		want, err := strconv.ParseUint(s, 16, 64)
		if ok != (err == nil) || ok && got != want {
			t.Errorf("%q: parseHex %x %v, ParseUint %x %v", s, got, ok, want, err)
		}
	}
}

// A reader that knows the base streams the table once and names what the
// two-pass read names.
func TestReadKallsymsAtAgreesWithReadKallsymsFor(t *testing.T) {
	table := "ffffffff81000000 T _stext\n" +
		"ffffffff81000100 T bpf_map_lookup_elem\n" +
		"ffffffff81000200 T __bpf_call_base\n" +
		"ffffffff81000300 t bpf_ktime_get_ns\n"
	base, err := FindCallBase(strings.NewReader(table))
	if err != nil || base != 0xffffffff81000200 {
		t.Fatalf("base %x, %v", base, err)
	}
	imms := map[int32]bool{-0x100: true, 0x100: true, 0: true}
	at, err := ReadKallsymsAt(strings.NewReader(table), base, imms)
	if err != nil {
		t.Fatal(err)
	}
	two, err := ReadKallsymsFor(strings.NewReader(table), imms)
	if err != nil {
		t.Fatal(err)
	}
	for imm := range imms {
		addr := base + uint64(int64(imm))
		a, _ := at.Name(addr)
		b, _ := two.Name(addr)
		if a != b || a == "" {
			t.Errorf("%x: streamed %q, two-pass %q", addr, a, b)
		}
	}
	if base, err := FindCallBase(strings.NewReader("ffffffff81000000 T _stext\n")); base != 0 || err != nil {
		t.Errorf("a table without __bpf_call_base: %x, %v; want 0, nil", base, err)
	}
}
