package analysis

import (
	"strconv"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// KfuncResolver names kfuncs called through BPF_PSEUDO_KFUNC_CALL. btfID is
// the call's imm; fdIndex its off: 0 for vmlinux, else an index into the
// loader's fd_array of module BTF objects (which module is not recorded in
// the instruction, so resolvers may only guess).
type KfuncResolver interface {
	KfuncName(btfID int32, fdIndex int16) (string, bool)
}

// KernelKfuncs resolves kfunc BTF ids through the running kernel's BTF:
// /sys/kernel/btf/vmlinux, and for module kfuncs every module's split BTF (a
// name is returned only when exactly one module has a function at that id).
type KernelKfuncs struct {
	once    sync.Once
	vmlinux *btf.Spec
	modules []*btf.Spec
}

// kernelKfuncs is the process-wide resolver Analyze uses by default.
var kernelKfuncs = &KernelKfuncs{}

func (k *KernelKfuncs) load() {
	k.once.Do(func() {
		cache := btf.NewCache()
		v, err := cache.Kernel()
		if err != nil {
			return // no kernel BTF: kfuncs stay unnamed
		}
		k.vmlinux = v
		names, err := cache.Modules()
		if err != nil {
			return
		}
		for _, n := range names {
			if m, err := cache.Module(n); err == nil {
				k.modules = append(k.modules, m)
			}
		}
	})
}

// KfuncName implements KfuncResolver.
func (k *KernelKfuncs) KfuncName(btfID int32, fdIndex int16) (string, bool) {
	if btfID <= 0 {
		return "", false
	}
	k.load()
	if fdIndex == 0 {
		return funcName(k.vmlinux, btfID)
	}
	found := ""
	for _, m := range k.modules {
		if n, ok := funcName(m, btfID); ok {
			if found != "" && found != n {
				return "", false // ambiguous between modules
			}
			found = n
		}
	}
	return found, found != ""
}

func funcName(s *btf.Spec, id int32) (string, bool) {
	if s == nil {
		return "", false
	}
	t, err := s.TypeByID(btf.TypeID(id))
	if err != nil {
		return "", false
	}
	fn, ok := t.(*btf.Func)
	if !ok {
		return "", false
	}
	return fn.Name, true
}

func resolveKfunc(r KfuncResolver, id int32, off int16) string {
	if r == nil {
		r = kernelKfuncs
	}
	if n, ok := r.KfuncName(id, off); ok {
		return n
	}
	return "kfunc#" + strconv.FormatInt(int64(id), 10)
}
