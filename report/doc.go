// Package report writes the analyst's view of one eBPF program as a single
// self-contained HTML file: the verdict and its reasons first, then the
// metadata, helper histogram, maps, strings and fingerprint, the
// control-flow graph (laid out by package cfg, drawn in the page, pan and
// zoom, click a block to reach its instructions) and the disassembly,
// cross-linked both ways. The page loads nothing from anywhere (a
// Content-Security-Policy forbids it) and draws only what is in view, so a
// program of 100,000 instructions stays usable. Everything that comes from
// the program (names, strings, map names) is escaped.
package report
