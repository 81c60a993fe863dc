package rules

// Limits on rule input. Rule files are small; anything near these is a
// mistake or an attack on whoever runs `rules check`.
const (
	MaxFileSize   = 128 << 10 // bytes per rule file; larger sets go in a directory
	MaxFiles      = 256       // rule files per directory
	MaxRules      = 4096      // rules per set
	MaxPatternLen = 256       // bytes per string, glob or regex pattern
	MaxListLen    = 1024      // entries per list
	maxErrors     = 50        // errors reported per load; the rest are counted
	maxDepth      = 16        // not/any nesting
	kernelNameMax = 15        // BPF_OBJ_NAME_LEN and TASK_COMM_LEN minus the NUL
)

// go-yaml takes time quadratic (or worse) in nesting depth, line length and
// the number of keys of a mapping (16,000 nested "[" took 18 s, 20,000 keys
// 8 s). Rule files are small and shallow, so the text and then the token
// stream are checked against these bounds before the parser runs; larger
// rule sets are split into files of a directory.
const (
	maxFlowDepth    = 32    // nested [ and {
	maxStructColumn = 160   // column of a "-", ":" or "?": bounds block nesting
	maxTokens       = 50000 // tokens per file
	maxLines        = 4000
	maxLineLen      = 1024
)
