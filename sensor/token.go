package sensor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// TokenCreated is one BPF_TOKEN_CREATE the sensor saw (6.9+).
type TokenCreated struct {
	Errno int            // non-zero: the call failed
	FD    int            // the token fd in the creator
	Token *program.Token // origin and delegation; Creator always set
}

// bpfCmdNames are enum bpf_cmd, for naming delegated commands.
var bpfCmdNames = []string{"map_create", "map_lookup_elem", "map_update_elem", "map_delete_elem", "map_get_next_key",
	"prog_load", "obj_pin", "obj_get", "prog_attach", "prog_detach", "prog_test_run", "prog_get_next_id",
	"map_get_next_id", "prog_get_fd_by_id", "map_get_fd_by_id", "obj_get_info_by_fd", "prog_query",
	"raw_tracepoint_open", "btf_load", "btf_get_fd_by_id", "task_fd_query", "map_lookup_and_delete_elem",
	"map_freeze", "btf_get_next_id", "map_lookup_batch", "map_lookup_and_delete_batch", "map_update_batch",
	"map_delete_batch", "link_create", "link_update", "link_get_fd_by_id", "link_get_next_id", "enable_stats",
	"iter_create", "link_detach", "prog_bind_map", "token_create", "prog_stream_read_by_fd"}

// delegation names the set bits of mask with names (an enum's), or their
// numbers past its end.
func delegation(mask uint64, name func(uint32) (string, bool)) program.Delegation {
	d := program.Delegation{Mask: mask}
	for i := uint32(0); i < 64; i++ {
		if mask&(1<<i) == 0 {
			continue
		}
		n, ok := name(i)
		if !ok {
			n = strconv.FormatUint(uint64(i), 10)
		}
		d.Names = append(d.Names, n)
	}
	return d
}

func cmdName(i uint32) (string, bool) {
	if int(i) < len(bpfCmdNames) {
		return bpfCmdNames[i], true
	}
	return "", false
}

// ErrNotToken: an fd passed as a BPF token is something else.
var ErrNotToken = errors.New("not a BPF token")

// ParseTokenFdinfo reads the delegation of a token from its
// /proc/PID/fdinfo/FD text: allowed_cmds, allowed_maps, allowed_progs and
// allowed_attachs, each "any" or a hex mask. Text without them is not a
// token (ErrNotToken); a malformed value is an error naming the line.
func ParseTokenFdinfo(text string) (*program.Token, error) {
	t := &program.Token{}
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var d *program.Delegation
		var name func(uint32) (string, bool)
		switch key {
		case "allowed_cmds":
			d, name = &t.AllowedCmds, cmdName
		case "allowed_maps":
			d, name = &t.AllowedMaps, program.MapTypes.Name
		case "allowed_progs":
			d, name = &t.AllowedProgs, program.ProgTypes.Name
		case "allowed_attachs":
			d, name = &t.AllowedAttachs, program.AttachTypes.Name
		default:
			continue
		}
		val = strings.TrimSpace(val)
		if val == "any" {
			*d = program.Delegation{Any: true, Mask: ^uint64(0)}
		} else {
			m, err := strconv.ParseUint(strings.TrimPrefix(val, "0x"), 16, 64)
			if err != nil || !strings.HasPrefix(val, "0x") {
				return nil, fmt.Errorf("token fdinfo line %d: %s %q: want any or a 0x hex mask", n, key, val)
			}
			*d = delegation(m, name)
		}
		seen++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("token fdinfo: %w", err)
	}
	if seen == 0 {
		return nil, ErrNotToken
	}
	return t, nil
}

// tokenKey is a token file's identity: its inode on the bpffs superblock.
type tokenKey struct {
	ino uint64
	dev uint32 // kernel dev_t
}

// tokenBook keeps what the sensor learnt when tokens were created, so a
// later load through one names its origin. Bounded: the oldest is
// forgotten past maxTokens.
type tokenBook struct {
	mu    sync.Mutex
	by    map[tokenKey]*program.Token
	order []tokenKey
	// byAddr: the same tokens by their struct bpf_token's kernel address,
	// which a program loaded through one points to (prog->aux->token).
	byAddr map[uint64]tokenKey
	proc   string // /proc, replaceable in tests
}

const maxTokens = 4096

func newTokenBook() *tokenBook {
	return &tokenBook{by: map[tokenKey]*program.Token{}, byAddr: map[uint64]tokenKey{}, proc: "/proc"}
}

// created turns a token record into a TokenCreated and remembers the token.
func (b *tokenBook) created(r *sentrySentryTokenRec) *TokenCreated {
	pid := strconv.Itoa(int(r.Pid))
	cr := &program.TokenCreator{PID: r.Pid, UID: r.Uid, Comm: cString(r.Comm[:]), ExeInode: r.ExeIno, ExeDev: r.ExeDev}
	cr.Exe, _ = os.Readlink(b.proc + "/" + pid + "/exe")
	tc := &TokenCreated{FD: int(r.Ret), Token: &program.Token{Creator: cr}}
	t := tc.Token
	if r.Ret < 0 {
		tc.Errno, tc.FD = int(-r.Ret), -1
		t.Error = unix.ErrnoName(unix.Errno(-r.Ret))
		return tc
	}
	if r.Resolved != 0 {
		t.Inode, t.Dev, t.UserNS = r.TokenIno, r.TokenDev, r.Userns
		t.AllowedCmds = delegationOrAny(r.AllowedCmds, cmdName)
		t.AllowedMaps = delegationOrAny(r.AllowedMaps, program.MapTypes.Name)
		t.AllowedProgs = delegationOrAny(r.AllowedProgs, program.ProgTypes.Name)
		t.AllowedAttachs = delegationOrAny(r.AllowedAttachs, program.AttachTypes.Name)
	} else {
		t.Error = "the kernel's token could not be read"
	}
	t.Mount, t.MountOptions = b.mountOf(pid, int(r.BpffsFd), r.TokenDev)
	b.mu.Lock()
	defer b.mu.Unlock()
	k := tokenKey{r.TokenIno, r.TokenDev}
	if _, ok := b.by[k]; !ok {
		b.order = append(b.order, k)
	}
	b.by[k] = t
	if r.TokenAddr != 0 {
		// A freed token's address can be reused: the newest creation wins.
		b.byAddr[r.TokenAddr] = k
	}
	for len(b.order) > maxTokens {
		delete(b.by, b.order[0])
		b.order = b.order[1:]
	}
	for a, k := range b.byAddr {
		if b.by[k] == nil && len(b.byAddr) > maxTokens {
			delete(b.byAddr, a)
		}
	}
	return tc
}

// delegationOrAny: a mask with every bit set is "any" (the kernel's
// delegate_*=any sets all bits).
func delegationOrAny(m uint64, name func(uint32) (string, bool)) program.Delegation {
	if m == ^uint64(0) {
		return program.Delegation{Any: true, Mask: m}
	}
	return delegation(m, name)
}

// mountOf names the bpffs the token came from: the creator's bpffs fd as a
// path, and the options of the mount with the token's device in the
// creator's mountinfo (a detached fsmount is in no mountinfo: no options).
func (b *tokenBook) mountOf(pid string, bpffsFD int, dev uint32) (string, string) {
	path, _ := os.Readlink(b.proc + "/" + pid + "/fd/" + strconv.Itoa(bpffsFD))
	mi, err := os.ReadFile(b.proc + "/" + pid + "/mountinfo")
	if err != nil {
		return path, ""
	}
	want := fmt.Sprintf("%d:%d", dev>>20, dev&(1<<20-1))
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[2] != want {
			continue
		}
		// After the " - " separator: fstype, source, super options.
		for i, x := range f {
			if x == "-" && i+3 < len(f) {
				return f[4], f[5] + "," + f[i+3]
			}
		}
	}
	return path, ""
}

// byAddress names the token at kernel address addr (a program's
// prog->aux->token), in user namespace userns: the one the sensor saw
// created there, else only what the kernel said (the user namespace).
func (b *tokenBook) byAddress(addr, userns uint64) *program.Token {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.byAddr[addr]; ok {
		if t := b.by[k]; t != nil && t.UserNS == userns {
			c := *t
			return &c
		}
	}
	return &program.Token{UserNS: userns, Error: "created before the sensor started (or its record was lost): creator, delegation and mount unknown"}
}

// resolve names the token of a load made through token fd fd of process
// pid. The kernel read the fd's file at the load (ino, dev; 0 when the fd
// was not open): a token the sensor saw created is named from that alone,
// whatever became of the loader since. Otherwise the loader's fd is
// looked at (stat, fdinfo): its delegation, or why it is no token.
func (b *tokenBook) resolve(p *program.Provenance, pid uint32, ino uint64, dev uint32) {
	if ino != 0 {
		b.mu.Lock()
		known := b.by[tokenKey{ino, dev}]
		b.mu.Unlock()
		if known != nil {
			c := *known
			p.Token = &c
			return
		}
	}
	fdPath := fmt.Sprintf("%s/%d/fd/%d", b.proc, pid, p.TokenFD)
	var st unix.Stat_t
	if err := unix.Stat(fdPath, &st); err != nil {
		p.Token = &program.Token{Error: fmt.Sprintf("token fd %d of pid %d: %v", p.TokenFD, pid, err)}
		return
	}
	key := tokenKey{st.Ino, unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)}
	info, err := os.ReadFile(fmt.Sprintf("%s/%d/fdinfo/%d", b.proc, pid, p.TokenFD))
	var fdTok *program.Token
	if err == nil {
		fdTok, err = ParseTokenFdinfo(string(info))
	}
	if err != nil {
		p.Token = &program.Token{Inode: key.ino, Dev: key.dev, Error: fmt.Sprintf("token fd %d of pid %d: %v", p.TokenFD, pid, err)}
		return
	}
	b.mu.Lock()
	known := b.by[key]
	b.mu.Unlock()
	if known != nil {
		c := *known
		p.Token = &c
		return
	}
	fdTok.Inode, fdTok.Dev = key.ino, key.dev
	fdTok.Error = "created before the sensor started (or its record was lost): creator, user namespace and mount unknown"
	p.Token = fdTok
}

// TokenEvents delivers the BPF_TOKEN_CREATE calls the sensor saw. Nobody
// has to read it: when its buffer is full, creations are dropped and
// counted ("token_events" in Losses); the token is remembered either way.
func (s *Sensor) TokenEvents() <-chan *TokenCreated { return s.tokenEvents }

func (s *Sensor) tokenCreated(r *sentrySentryTokenRec) {
	tc := s.asm.tokens.created(r)
	select {
	case s.tokenEvents <- tc:
	default:
		s.tokenDrops++
	}
}

// MapCreated is one BPF_MAP_CREATE made through a BPF token (6.9+): a map
// made with the power the token delegates.
type MapCreated struct {
	ID         uint64 // the sensor's id of the call
	Time       time.Time
	Caller     *program.Loader
	MapType    uint32
	MapTypeStr string // the type's name, or its number
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
	Name       string
	MapID      uint32 // 0: not created
	FD         int    // the map fd, or -1
	Errno      int    // non-zero: the call failed
	// Provenance: ViaToken, TokenFD and the token's origin (Token).
	Provenance *program.Provenance
}

// MapCreates delivers the map creations through tokens the sensor saw.
// Nobody has to read it: when its buffer is full, they are dropped and
// counted ("map_create_events" in Losses).
func (s *Sensor) MapCreates() <-chan *MapCreated { return s.mapCreates }

func (s *Sensor) mapCreated(r *sentrySentryMapCreate) {
	mc := &MapCreated{
		ID: r.H.LoadId, MapType: r.MapType, KeySize: r.KeySize, ValueSize: r.ValueSize, MaxEntries: r.MaxEntries,
		Flags: r.MapFlags, Name: cString(r.Name[:]), MapID: r.MapId, FD: int(r.Ret),
		Caller: &program.Loader{PID: r.Pid, TID: r.Tid, UID: r.Uid, GID: r.Gid, Comm: cString(r.Comm[:]),
			CgroupID: r.CgroupId, ExeInode: r.ExeIno, ExeDev: r.ExeDev},
		Provenance: &program.Provenance{ViaToken: true, TokenFD: r.TokenFd},
	}
	mc.MapTypeStr, _ = program.MapTypes.Name(r.MapType)
	if mc.MapTypeStr == "" {
		mc.MapTypeStr = strconv.FormatUint(uint64(r.MapType), 10)
	}
	if r.Ret < 0 {
		mc.FD, mc.Errno = -1, int(-r.Ret)
	}
	if s.asm != nil && s.asm.monoToWall != nil {
		mc.Time = s.asm.monoToWall(r.KtimeNs)
	} else {
		mc.Time = time.Now()
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", r.Pid)); err == nil {
		mc.Caller.Exe = exe
	}
	s.asm.tokens.resolve(mc.Provenance, r.Pid, r.TokenIno, r.TokenDev)
	select {
	case s.mapCreates <- mc:
	default:
		s.mapCreateDrops++
	}
}
