package output

// Severity is a syslog severity (RFC 5424 section 6.2.1), lower is worse.
type Severity uint8

// The severities events map to.
const (
	SevCritical Severity = 2
	SevError    Severity = 3
	SevWarning  Severity = 4
	SevNotice   Severity = 5
	SevInfo     Severity = 6
)

// severityOf ranks an event for syslog: a load that matched rules gets its
// worst rule severity, a blocked one at least warning; lost events and
// rejected rules are warnings, lifecycle notices, clean loads info.
func severityOf(ev *Event) Severity {
	switch ev.Event {
	case KindLoss:
		return SevWarning
	case KindRulesRejected:
		return SevError
	case KindTamper:
		return SevCritical
	case KindHeartbeat:
		if hb := ev.Heartbeat; hb != nil && (hb.HooksAttached < hb.Hooks || !hb.TablesIntact) {
			return SevCritical
		}
		return SevInfo
	case KindSensorStarted, KindSensorStopped, KindRulesReloaded:
		return SevNotice
	}
	sev := SevInfo
	if v := ev.Verdict; v != nil {
		for _, r := range v.Rules {
			s := SevWarning
			switch r.Severity {
			case "critical":
				s = SevCritical
			case "high":
				s = SevError
			case "low", "info":
				s = SevNotice
			}
			sev = min(sev, s)
		}
		if v.Action == "block" {
			sev = min(sev, SevWarning)
		}
	}
	return sev
}
