package inventory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// fdFields are the BPF lines of one /proc/PID/fdinfo/FD. A link's fdinfo
// names its program too, so link wins over prog.
type fdFields struct{ prog, mapID, link uint32 }

func parseFDInfo(b []byte) fdFields {
	var f fdFields
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint32
		switch string(k) {
		case "prog_id":
			dst = &f.prog
		case "map_id":
			dst = &f.mapID
		case "link_id":
			dst = &f.link
		default:
			continue
		}
		if n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 32); err == nil {
			*dst = uint32(n)
		}
	}
	return f
}

// owners maps object ids to holders, from one walk of /proc.
type owners struct {
	progs, maps, links map[uint32][]Holder
}

// walkProc reads every process's BPF fds under root/proc. Processes and
// fds that vanish meanwhile are skipped (they no longer hold anything);
// failing to list /proc itself is an error.
func walkProc(root string) (*owners, error) {
	o := &owners{progs: map[uint32][]Holder{}, maps: map[uint32][]Holder{}, links: map[uint32][]Holder{}}
	proc := filepath.Join(root, "proc")
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	pids := 0
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		pids++
		dir := filepath.Join(proc, e.Name())
		fdinfo := filepath.Join(dir, "fdinfo")
		fds, err := os.ReadDir(fdinfo)
		if err != nil {
			continue
		}
		var ident *Holder
		for _, fe := range fds {
			fd, err := strconv.Atoi(fe.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join(fdinfo, fe.Name()))
			if err != nil || !bytes.Contains(b, []byte("_id:")) {
				continue
			}
			f := parseFDInfo(b)
			if f == (fdFields{}) {
				continue
			}
			if ident == nil {
				ident = processIdentity(dir, uint32(pid))
			}
			h := *ident
			h.FD = fd
			switch {
			case f.link != 0:
				o.links[f.link] = append(o.links[f.link], h)
			case f.prog != 0:
				o.progs[f.prog] = append(o.progs[f.prog], h)
			case f.mapID != 0:
				o.maps[f.mapID] = append(o.maps[f.mapID], h)
			}
		}
	}
	if pids == 0 {
		return nil, fmt.Errorf("%s lists no process (not a procfs, or mounted with hidepid)", proc)
	}
	return o, nil
}

func processIdentity(dir string, pid uint32) *Holder {
	h := &Holder{PID: pid}
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		h.Comm = strings.TrimRight(string(b), "\n")
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		h.Exe = exe
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "exe"), &st); err == nil {
		h.ExeDev, h.ExeIno = uint64(st.Dev), st.Ino
	}
	return h
}

// bpffsMounts lists the bpf file systems in root/proc/self/mountinfo.
func bpffsMounts(root string) ([]string, error) {
	f, err := os.Open(filepath.Join(root, "proc", "self", "mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional…] - fstype source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields := strings.Fields(pre)
		if len(fields) < 5 || !strings.HasPrefix(post, "bpf ") {
			continue
		}
		mp := unescapeMount(fields[4])
		if !seen[mp] {
			seen[mp] = true
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space …).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

type pin struct {
	kind string
	id   uint32
	path string
}

// walkPins opens every file under each bpffs mount and asks which object
// it pins.
func walkPins(root string, k kernel) ([]pin, []string) {
	mounts, err := bpffsMounts(root)
	if err != nil {
		return nil, []string{"bpffs pins unknown: " + err.Error()}
	}
	var pins []pin
	var problems []string
	for _, mp := range mounts {
		dir := filepath.Join(root, mp)
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if path == dir {
					return err
				}
				problems = append(problems, fmt.Sprintf("bpffs %s: %v", path, err))
				return nil
			}
			if d.IsDir() {
				return nil
			}
			kind, id, err := k.pinned(path)
			if errors.Is(err, unix.ENOENT) {
				return nil // unpinned meanwhile, or not an object (bpf_preload's progs.debug)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("bpffs pin %s: %v", path, err))
				return nil
			}
			pins = append(pins, pin{kind, id, path})
			return nil
		})
		if err != nil {
			problems = append(problems, fmt.Sprintf("bpffs %s: %v", dir, err))
		}
	}
	return pins, problems
}

func attachOwners(inv *Inventory, root string, k kernel) {
	if root == "" {
		root = "/"
	}
	o, err := walkProc(root)
	if err != nil {
		inv.Problems = append(inv.Problems, "fd holders unknown: "+err.Error())
		o = &owners{}
	}
	pins, probs := walkPins(root, k)
	inv.Problems = append(inv.Problems, probs...)
	pinsOf := map[string]map[uint32][]string{"prog": {}, "map": {}, "link": {}}
	for _, p := range pins {
		pinsOf[p.kind][p.id] = append(pinsOf[p.kind][p.id], p.path)
	}
	for i := range inv.Programs {
		p := &inv.Programs[i]
		p.Holders = o.progs[p.ID]
		sortHolders(p.Holders)
		p.Pins = pinsOf["prog"][p.ID]
		sort.Strings(p.Pins)
	}
	for i := range inv.Maps {
		m := &inv.Maps[i]
		m.Holders = o.maps[m.ID]
		sortHolders(m.Holders)
		m.Pins = pinsOf["map"][m.ID]
		sort.Strings(m.Pins)
	}
	for i := range inv.Links {
		l := &inv.Links[i]
		l.Holders = o.links[l.ID]
		sortHolders(l.Holders)
		l.Pins = pinsOf["link"][l.ID]
		sort.Strings(l.Pins)
	}
}
