package output

// Tamper says what about the sensor's own state was found changed by
// someone else: its kernel config or rule table no longer what the agent
// wrote, or a load that the kernel judged "block" in enforce mode that
// loaded anyway (enforcement switched off or bypassed).
type Tamper struct {
	What   string `json:"what"`   // TamperConfig, TamperRules, TamperEnforcement or TamperAccess
	Detail string `json:"detail"` // what differs, escaped
	// LoadID is the load that was blocked yet loaded (TamperEnforcement).
	LoadID uint64 `json:"load_id,omitempty"`
}

// What was tampered with.
const (
	TamperConfig      = "config"      // the kernel config map (mode, agent identity, policies)
	TamperRules       = "rules"       // the kernel rule table
	TamperEnforcement = "enforcement" // a block verdict in enforce mode that loaded
	// TamperLockCollision: lock mode let a program load by a listed
	// fingerprint whose SHA-256 is not the listed one (a forged collision).
	TamperLockCollision = "lock_collision"
	TamperAccess        = "access" // another process reached for the sensor's maps or links (killed or refused in enforce mode)
)

// NewTamper is the event for t; Detail is escaped here.
func NewTamper(t Tamper) *Event {
	t.What, t.Detail = Escape(t.What), Escape(t.Detail)
	return &Event{Event: KindTamper, Tamper: &t}
}
