package sensor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func TestParseTokenFdinfo(t *testing.T) {
	tok, err := ParseTokenFdinfo("pos:\t0\nflags:\t02\nmnt_id:\t40\nino:\t7\nallowed_cmds:\t0x60\nallowed_maps:\tany\nallowed_progs:\t0x4\nallowed_attachs:\t0x0\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tok.AllowedCmds.Names, ",") != "prog_load,obj_pin" || tok.AllowedCmds.Mask != 0x60 {
		t.Errorf("cmds %+v", tok.AllowedCmds)
	}
	if !tok.AllowedMaps.Any {
		t.Errorf("maps %+v, want any", tok.AllowedMaps)
	}
	if strings.Join(tok.AllowedProgs.Names, ",") != "kprobe" {
		t.Errorf("progs %+v, want kprobe", tok.AllowedProgs)
	}
	if _, err := ParseTokenFdinfo("pos:\t0\nflags:\t02\nprog_type:\t1\n"); !errors.Is(err, ErrNotToken) {
		t.Errorf("a prog fd's fdinfo: %v, want ErrNotToken", err)
	}
	if _, err := ParseTokenFdinfo("allowed_cmds:\t123\n"); err == nil || !strings.Contains(err.Error(), "line 1: allowed_cmds") {
		t.Errorf("a mask without 0x: %v, want an error naming line 1", err)
	}
}

// A fake /proc: a token fd whose fdinfo and stat the book resolves, and
// the origin remembered from its creation.
func TestTokenBookNamesTheOriginOfALoad(t *testing.T) {
	proc := t.TempDir()
	// The "token" is a real file, so stat has an inode and device to key on.
	tokFile := filepath.Join(proc, "tokenfile")
	if err := os.WriteFile(tokFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"10/fd", "10/fdinfo", "20/fd", "20/fdinfo"} {
		if err := os.MkdirAll(filepath.Join(proc, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(tokFile, filepath.Join(proc, "20/fd/3")))
	must(os.WriteFile(filepath.Join(proc, "20/fdinfo/3"), []byte("allowed_cmds:\tany\nallowed_maps:\t0x0\nallowed_progs:\t0x6\nallowed_attachs:\tany\n"), 0o600))
	must(os.Symlink("/usr/bin/creator", filepath.Join(proc, "10/exe")))
	must(os.Symlink(tokFile, filepath.Join(proc, "20/fd/4")))
	must(os.WriteFile(filepath.Join(proc, "20/fdinfo/4"), []byte("pos:\t0\n"), 0o600))

	b := newTokenBook()
	b.proc = proc
	p := &program.Provenance{ViaToken: true, TokenFD: 3}
	b.resolve(p, 20, 0, 0)
	if p.Token == nil || p.Token.Creator != nil || !strings.Contains(p.Token.Error, "before the sensor started") || !p.Token.AllowedCmds.Any {
		t.Fatalf("an unknown token: %+v", p.Token)
	}
	ino, dev := p.Token.Inode, p.Token.Dev

	rec := &sentrySentryTokenRec{Ret: 5, Pid: 10, Uid: 0, BpffsFd: 9, Resolved: 1, TokenIno: ino, TokenDev: dev,
		Userns: 4026532001, AllowedCmds: ^uint64(0), AllowedProgs: 1 << 2}
	copy(rec.Comm[:], []int8{'c', 'r'})
	tc := b.created(rec)
	if tc.Errno != 0 || tc.FD != 5 || tc.Token.Creator.Exe != "/usr/bin/creator" || tc.Token.UserNS != 4026532001 {
		t.Fatalf("creation %+v creator %+v", tc, tc.Token.Creator)
	}
	p = &program.Provenance{ViaToken: true, TokenFD: 3}
	b.resolve(p, 20, 0, 0)
	if p.Token == nil || p.Token.Creator == nil || p.Token.Creator.PID != 10 || p.Token.UserNS != 4026532001 || p.Token.Error != "" {
		t.Fatalf("a known token: %+v", p.Token)
	}
	if strings.Join(p.Token.AllowedProgs.Names, ",") != "kprobe" {
		t.Errorf("progs %+v", p.Token.AllowedProgs)
	}

	p = &program.Provenance{ViaToken: true, TokenFD: 4}
	b.resolve(p, 20, 0, 0)
	if p.Token == nil || !strings.Contains(p.Token.Error, "not a BPF token") {
		t.Errorf("an fd that is not a token: %+v", p.Token)
	}
	p = &program.Provenance{ViaToken: true, TokenFD: 7}
	b.resolve(p, 20, 0, 0)
	if p.Token == nil || !strings.Contains(p.Token.Error, "token fd 7 of pid 20") {
		t.Errorf("a closed fd: %+v", p.Token)
	}
	failed := b.created(&sentrySentryTokenRec{Ret: -1, Pid: 10})
	// Known by the kernel's identity alone: the loader and its fd are gone.
	p = &program.Provenance{ViaToken: true, TokenFD: 3}
	b.resolve(p, 999, ino, dev)
	if p.Token == nil || p.Token.Creator == nil || p.Token.Creator.PID != 10 {
		t.Errorf("a known token whose loader is gone: %+v", p.Token)
	}
	if failed.Errno != 1 || failed.Token.Error != "EPERM" {
		t.Errorf("a failed creation: %+v %+v", failed, failed.Token)
	}
}

// An attached program's token (prog->aux->token, an address) is named from
// the creation recorded at that address, only in its user namespace; an
// unknown address gives the user namespace alone.
func TestTokenBookNamesATokenByItsAddress(t *testing.T) {
	b := newTokenBook()
	b.proc = t.TempDir()
	rec := &sentrySentryTokenRec{Ret: 5, Pid: 10, Resolved: 1, TokenIno: 7, TokenDev: 40, TokenAddr: 0xffff888012345600,
		Userns: 4026532001, AllowedCmds: ^uint64(0)}
	b.created(rec)
	if tok := b.byAddress(0xffff888012345600, 4026532001); tok.Error != "" || tok.Creator == nil || tok.Creator.PID != 10 || tok.Inode != 7 {
		t.Fatalf("known address: %+v", tok)
	}
	for _, c := range []struct {
		addr, userns uint64
	}{{0xffff888012345600, 4026532999}, {0xffff888099999900, 4026532001}} {
		if tok := b.byAddress(c.addr, c.userns); tok.Creator != nil || tok.UserNS != c.userns || tok.Error == "" {
			t.Errorf("address %#x userns %d: %+v, want the user namespace alone and an error", c.addr, c.userns, tok)
		}
	}
}
