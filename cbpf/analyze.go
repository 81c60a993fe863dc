package cbpf

import (
	"fmt"
	"slices"
)

// Compare is one test of packet bytes against a constant.
type Compare struct {
	Insn   int    `json:"insn"`
	Load   string `json:"load"` // the load as tcpdump prints its operand: "[12]", "[x + 22]"
	Size   int    `json:"size"` // bytes loaded: 1, 2 or 4
	Op     string `json:"op"`   // jeq | jgt | jge | jset
	Value  uint32 `json:"value"`
	Field  string `json:"field"`            // ethertype | ip_proto | port | header | payload
	Masked bool   `json:"masked,omitempty"` // the loaded value went through arithmetic first
}

// Analysis is what a classic filter tests.
type Analysis struct {
	Compares []Compare `json:"compares,omitempty"`
	// Ports are the TCP/UDP ports it compares (IPv4 or IPv6 over Ethernet,
	// as tcpdump's compiler lays them out).
	Ports []uint32 `json:"ports,omitempty"`
	// Magic are comparisons of 2- or 4-byte values beyond the transport
	// headers: what BPFDoor-style backdoors use to recognise their packets.
	Magic []Compare `json:"magic,omitempty"`
	// Accepts is false when every path returns 0 (the filter drops all).
	Accepts bool `json:"accepts"`
}

// source is what the accumulator holds.
type source struct {
	known   bool
	ind     bool // relative to X (set by ldxb 4*([k]&0xf): the IP header length)
	xComp   bool // X was computed some other way (payload offsets)
	off     uint32
	size    int
	derived bool // arithmetic since the load
}

// Analyze walks the instructions in order (classic programs only jump
// forward) and records every comparison of loaded packet bytes.
func Analyze(ins []Instruction) *Analysis {
	a := &Analysis{}
	var acc source
	xIsIPHdrLen, xKnown := false, false
	for i, in := range ins {
		switch in.Code & 0x07 {
		case classLD:
			mode := in.Code & 0xe0
			size := map[uint16]int{sizeW: 4, sizeH: 2, sizeB: 1}[in.Code&0x18]
			switch mode {
			case modeABS:
				acc = source{known: true, off: in.K, size: size}
			case modeIND:
				acc = source{known: true, ind: true, xComp: !(xKnown && xIsIPHdrLen), off: in.K, size: size}
			default:
				acc = source{}
			}
		case classLDX:
			xKnown, xIsIPHdrLen = true, in.Code == classLDX|sizeB|modeMSH
		case classMISC:
			if in.Code == classMISC { // tax: X from A
				xKnown, xIsIPHdrLen = true, false
			} else {
				acc = source{}
			}
		case classALU:
			acc.derived = true
		case classRET:
			if in.Code&0x18 != 0 || in.K != 0 {
				a.Accepts = true
			}
		case classJMP:
			op, ok := jumpNames[in.Code&0xf0]
			if !ok || in.Code&srcX != 0 || !acc.known {
				continue
			}
			c := Compare{Insn: i, Size: acc.size, Op: op, Value: in.K, Masked: acc.derived}
			if acc.ind {
				c.Load = fmt.Sprintf("[x + %d]", acc.off)
			} else {
				c.Load = absOperand(acc.off)
			}
			c.Field = classify(acc)
			a.Compares = append(a.Compares, c)
			if c.Field == "port" && op == "jeq" && !slices.Contains(a.Ports, in.K) {
				a.Ports = append(a.Ports, in.K)
			}
			if c.Field == "payload" && c.Size >= 2 && (op == "jeq" || op == "jset") {
				a.Magic = append(a.Magic, c)
			}
		}
	}
	return a
}

// classify names the field a load reads, for Ethernet frames laid out as
// tcpdump's compiler lays them out (14-byte Ethernet header; IPv4 transport
// header at X+14, X the IPv4 header length; IPv6 fixed at 54).
func classify(s source) string {
	switch {
	case s.ind && s.xComp:
		return "payload" // an offset computed from packet contents: inside the payload
	case s.ind && (s.off == 14 || s.off == 16) && s.size == 2:
		return "port"
	case s.ind && s.off >= 14+8:
		return "payload" // past the UDP/ICMP header, or deep in TCP's
	case s.ind:
		return "header"
	case s.off >= skfAdOff:
		return "ancillary"
	case s.off == 12 && s.size == 2:
		return "ethertype"
	case (s.off == 23 || s.off == 20) && s.size == 1:
		return "ip_proto"
	case (s.off == 54 || s.off == 56) && s.size == 2:
		return "port"
	case s.off >= 54+8:
		return "payload"
	}
	return "header"
}
