package output

// Heartbeat is the sensor's periodic proof of life: its hooks are attached
// to its programs, its kernel tables are what the agent wrote, and the
// kernel side keeps judging loads. A consumer that stops receiving
// heartbeats, or gets one with hooks missing, knows the sensor is blind.
type Heartbeat struct {
	Hooks         int      `json:"hooks"`          // links the sensor attached
	HooksAttached int      `json:"hooks_attached"` // still attached to its programs
	Detached      []string `json:"detached,omitempty"`
	TablesIntact  bool     `json:"tables_intact"`
	LoadsJudged   uint64   `json:"loads_judged"` // since the kernel side was loaded
	Interval      float64  `json:"interval_seconds"`
}

// NewHeartbeat is the event for h.
func NewHeartbeat(h Heartbeat) *Event {
	d := make([]string, len(h.Detached))
	for i, s := range h.Detached {
		d[i] = Escape(s)
	}
	if len(d) == 0 {
		d = nil
	}
	h.Detached = d
	return &Event{Event: KindHeartbeat, Heartbeat: &h}
}
