package rules

// TargetOnly reports whether the match judges nothing but the attach
// target, with exactly one of attach_to, attach_binary, attach_symbol,
// attach_interface and attach_cgroup: such a rule can be decided in the
// kernel at the attach from the target alone (the sensor's attach table).
func (m *Match) TargetOnly() bool {
	n := 0
	for _, g := range [][]Glob{m.AttachTo, m.AttachBinary, m.AttachSymbol, m.AttachInterface, m.AttachCgroup} {
		if len(g) > 0 {
			n++
		}
	}
	other := len(m.Helpers) > 0 || m.HelpersOnly || len(m.HelpersAny) > 0 || m.ProgName != nil || len(m.ProgType) > 0 ||
		len(m.AttachType) > 0 || m.GPL != nil || m.InsnCount != nil || len(m.Kfuncs) > 0 || len(m.MapTypes) > 0 ||
		m.TailCalls != nil || m.Strings != nil || m.Loader != nil || m.Not != nil || len(m.Any) > 0
	return n == 1 && !other
}
