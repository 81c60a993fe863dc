package output

import "time"

// FleetFirstSeen is the section of a fleet_first_seen event: the first
// prog_load of a program fingerprint that no host of the fleet had loaded
// before, as `ebpf-sentry fleet` saw it on the bus.
type FleetFirstSeen struct {
	SHA256    string    `json:"sha256"`
	Name      string    `json:"name,omitempty"`
	ProgType  string    `json:"prog_type,omitempty"`
	Host      string    `json:"host"` // where it was first loaded
	Time      time.Time `json:"time"` // when that host saw it
	LoaderExe string    `json:"loader_exe,omitempty"`
	EventID   string    `json:"event_id"` // the prog_load event that revealed it
}

// NewFleetFirstSeen makes the event; every string from the bus is escaped
// again, since whoever can publish on the bus can forge events.
func NewFleetFirstSeen(f FleetFirstSeen) *Event {
	f.Name, f.ProgType, f.Host, f.LoaderExe, f.EventID = Escape(f.Name), Escape(f.ProgType), Escape(f.Host), Escape(f.LoaderExe), Escape(f.EventID)
	return &Event{Event: KindFleetFirstSeen, Fleet: &f}
}
