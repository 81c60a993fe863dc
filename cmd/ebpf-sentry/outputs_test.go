package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/output"
)

func TestOutputFlagsBuildAWorkingPipeline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o := addOutputFlags(fs)
	if err := fs.Parse([]string{"--output", "file:" + path, "--event-insns", "none", "--metrics-addr", "127.0.0.1:0", "--loss-interval", "1h"}); err != nil {
		t.Fatal(err)
	}
	tel, err := o.start(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if tel.Metrics == nil || tel.Insns.Mode != output.InsnModeNone {
		t.Fatalf("telemetry = %+v", tel)
	}
	tel.Pipeline.Emit(output.SensorStarted(output.Sensor{Hook: "tp_btf", RulesCount: 2}))
	if err := tel.close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatal("no event written")
	}
	var ev map[string]any
	if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev["event"] != "sensor_started" {
		t.Fatalf("event %s: %v", sc.Bytes(), err)
	}
}

func TestOutputFlagsRefuseABadSinkBeforeAnythingStarts(t *testing.T) {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o := addOutputFlags(fs)
	if err := fs.Parse([]string{"--output", "syslog+udp://x:1", "--syslog-facility", "nope"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.start(slog.Default()); err == nil {
		t.Fatal("accepted an unknown facility")
	}
}
