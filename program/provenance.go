package program

import "fmt"

// Keyring kinds: where the key that verifies a signed load comes from
// (docs/PROVENANCE.md). Only system and bpf keyrings are vouched for by
// the machine; user and session keyrings belong to the caller, who can put
// any key there.
const (
	KeyringSystem  = "system"  // keyring_id 0..2: builtin, secondary, platform trusted keys
	KeyringBPF     = "bpf"     // a dedicated BPF keyring (no mainline kernel has one yet)
	KeyringUser    = "user"    // KEY_SPEC_USER_KEYRING (-4) or a key serial the caller names
	KeyringSession = "session" // the caller's thread, process, session or user-session keyring
)

// KeyringKinds lists the kinds, for rule validation and docs.
var KeyringKinds = []string{KeyringSystem, KeyringBPF, KeyringUser, KeyringSession}

// KeyringKind classifies a BPF_PROG_LOAD keyring_id as the kernel resolves
// it: ids 0..2 select system keyrings (bpf_lookup_system_key), everything
// else is looked up among the caller's keys (bpf_lookup_user_key).
// bpf/include/rules_eval.h rules_keyring_kind is its kernel twin.
func KeyringKind(id int32) string {
	switch {
	case id >= 0 && id <= 2:
		return KeyringSystem
	case id == -4:
		return KeyringUser
	case id < 0:
		return KeyringSession
	}
	return KeyringUser
}

// Verification results of a signed load.
const (
	SigVerified = "verified" // the kernel accepted the signature
	SigRejected = "rejected" // the kernel refused it (Errno says how)
	SigUnknown  = "unknown"  // the load failed in a way that does not say
	// SigUnsupported: the kernel takes signed loads but cannot check
	// them (EOPNOTSUPP: built without CONFIG_SYSTEM_DATA_VERIFICATION).
	SigUnsupported = "unsupported"
)

// Provenance is what a load says about where it comes from: a signature
// checked by the kernel (6.18+) and a BPF token (6.9+).
type Provenance struct {
	Signed        bool   `json:"signed"`
	SignaturePtr  uint64 `json:"signature_ptr,omitempty"` // the user pointer as given
	SignatureSize uint32 `json:"signature_size,omitempty"`
	// KeyringID is the attr's keyring_id; meaningful only when Signed.
	KeyringID int32  `json:"keyring_id"`
	Keyring   string `json:"keyring,omitempty"` // KeyringKind(KeyringID) when signed
	// Verification is the kernel's verdict on the signature, as far as the
	// load's outcome shows it: SigVerified, SigRejected or SigUnknown; ""
	// when unsigned or before the outcome is known.
	Verification string `json:"verification,omitempty"`
	// VerifyErrno is the errno that rejected the signature.
	VerifyErrno int `json:"verify_errno,omitempty"`

	ViaToken bool   `json:"via_token,omitempty"` // prog_flags has BPF_F_TOKEN_FD
	TokenFD  int32  `json:"token_fd,omitempty"`
	Token    *Token `json:"token,omitempty"` // the token's origin, when resolved

	// ViaLoader: the program was loaded from inside the kernel by a
	// BPF_PROG_TYPE_SYSCALL loader; Inherited is that loader's provenance.
	Inherited *Inherited `json:"inherited,omitempty"`
}

// Verified reports whether the kernel is known to have accepted the signature.
func (p *Provenance) Verified() bool {
	return p != nil && p.Signed && p.Verification == SigVerified
}

// Inherited is the provenance of the loader program that loaded this one.
type Inherited struct {
	LoaderID   uint32      `json:"loader_id"`
	LoaderTag  string      `json:"loader_tag,omitempty"`
	LoaderName string      `json:"loader_name,omitempty"`
	From       *Provenance `json:"from,omitempty"` // nil: the loader's load was not seen
}

// Token is the origin of a BPF token: who created it, on which bpffs mount
// with which delegation, in which user namespace.
type Token struct {
	// Inode and Dev identify the token file (an inode of the bpffs
	// superblock it was created from); Dev is the kernel's dev_t.
	Inode uint64 `json:"inode,omitempty"`
	Dev   uint32 `json:"dev,omitempty"`
	// UserNS is the inode number of the token's user namespace.
	UserNS uint64 `json:"userns,omitempty"`
	// Delegation as the token's fdinfo shows it: "any" or a hex bit mask,
	// and the names of the set bits.
	AllowedCmds    Delegation `json:"allowed_cmds"`
	AllowedMaps    Delegation `json:"allowed_maps"`
	AllowedProgs   Delegation `json:"allowed_progs"`
	AllowedAttachs Delegation `json:"allowed_attachs"`
	// Mount is the bpffs mount point and its options (delegate_*), as the
	// creator saw it.
	Mount        string        `json:"mount,omitempty"`
	MountOptions string        `json:"mount_options,omitempty"`
	Creator      *TokenCreator `json:"creator,omitempty"`
	// Error says what could not be resolved (the fd was already closed,
	// it is not a token, ...).
	Error string `json:"error,omitempty"`
}

// Delegation is one delegated set: Any, or the bits of Mask.
type Delegation struct {
	Any   bool     `json:"any,omitempty"`
	Mask  uint64   `json:"mask"`
	Names []string `json:"names,omitempty"`
}

func (d Delegation) String() string {
	if d.Any {
		return "any"
	}
	return fmt.Sprintf("0x%x", d.Mask)
}

// TokenCreator is the process that created a token (BPF_TOKEN_CREATE).
type TokenCreator struct {
	PID      uint32 `json:"pid"`
	UID      uint32 `json:"uid"`
	Comm     string `json:"comm,omitempty"`
	Exe      string `json:"exe,omitempty"`
	ExeInode uint64 `json:"exe_inode,omitempty"`
	ExeDev   uint32 `json:"exe_dev,omitempty"`
}
