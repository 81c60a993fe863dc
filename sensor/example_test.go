package sensor_test

import (
	"fmt"
	"log"

	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// Watch every program load on the host with the default rules, enforcing
// the block rules the kernel can evaluate. Needs root.
func Example() {
	set, err := rules.Defaults()
	if err != nil {
		log.Fatal(err)
	}
	s, err := sensor.New(sensor.Config{Mode: sensor.ModeEnforce, Rules: rules.Compile(set).Kernel()})
	if err != nil {
		log.Fatal(err) // sensor.ErrNotRoot, sensor.ErrNoHook …
	}
	defer s.Close()
	for ev := range s.Events() {
		p := ev.Program
		fmt.Printf("%s[%d] loaded %q (%d insns): %v, %v, %s\n",
			p.Loader.Comm, p.Loader.PID, p.Name, p.InsnCnt, ev.Verdict, ev.Action, ev.Outcome.Result)
		if !ev.Complete() {
			fmt.Println("  capture incomplete:", ev.Missing)
		}
	}
}
