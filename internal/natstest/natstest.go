// Package natstest runs real nats-server processes for tests: the server is
// built once per test binary from the github.com/nats-io/nats-server/v2
// module that go.mod requires (as a tool), and every server is a separate
// process listening on 127.0.0.1.
package natstest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

// Cleanup removes the server binary; call it from TestMain after m.Run.
func Cleanup() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// Binary builds nats-server (once) and returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "natstest-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "nats-server")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/nats-io/nats-server/v2")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build nats-server: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is one nats-server process.
type Server struct {
	Name     string
	Port     int // client port
	HTTPPort int // monitoring
	Dir      string
	conf     string
	bin      string

	mu   sync.Mutex
	cmd  *exec.Cmd
	wait chan struct{}
}

// URL is the server's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Port) }

// NewServer writes a configuration for a JetStream server in dir (extra is
// appended verbatim: cluster, tls, authorization blocks) without starting it.
func NewServer(tb testing.TB, name, dir, extra string) *Server {
	tb.Helper()
	s := &Server{Name: name, Port: FreePort(tb), HTTPPort: FreePort(tb), Dir: dir, bin: Binary(tb)}
	if err := os.MkdirAll(filepath.Join(dir, "js"), 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 64MB
  max_file_store: 1GB
}
%s
`, name, s.Port, s.HTTPPort, filepath.Join(dir, "js"), extra)
	s.conf = filepath.Join(dir, "server.conf")
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Start starts the process (it must not be running).
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("%s already running", s.Name)
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "-c", s.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	wait := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(wait)
	}()
	s.cmd, s.wait = cmd, wait
	return nil
}

// Kill ends the process with SIGKILL (a crash) and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop ends the process with SIGTERM (a clean shutdown) and waits for it.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, wait := s.cmd, s.wait
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-wait:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-wait
	}
}

// Healthy reports whether the monitoring endpoint answers /healthz with 200
// (the server is up and, with JetStream, has caught up with its cluster).
func (s *Server) Healthy() bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.HTTPPort))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Log is the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	return string(b)
}

// Cluster is a JetStream cluster of separate server processes.
type Cluster struct {
	Servers []*Server
}

// StartCluster starts an n-node JetStream cluster under dir and waits until
// every node is healthy. Stop it with Shutdown.
func StartCluster(tb testing.TB, n int, dir string) *Cluster {
	tb.Helper()
	routes := make([]int, n)
	for i := range routes {
		routes[i] = FreePort(tb)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		var rs []string
		for j, p := range routes {
			if j != i {
				rs = append(rs, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		extra := fmt.Sprintf("cluster {\n  name: sentry\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n", routes[i], strings.Join(rs, ", "))
		name := fmt.Sprintf("n%d", i+1)
		c.Servers = append(c.Servers, NewServer(tb, name, filepath.Join(dir, name), extra))
	}
	for _, s := range c.Servers {
		if err := s.Start(); err != nil {
			c.Shutdown()
			tb.Fatal(err)
		}
	}
	if err := c.WaitHealthy(time.Minute); err != nil {
		c.Shutdown()
		tb.Fatal(err)
	}
	return c
}

// URLs are the client URLs of every node.
func (c *Cluster) URLs() []string {
	var u []string
	for _, s := range c.Servers {
		u = append(u, s.URL())
	}
	return u
}

// WaitHealthy polls until every running node is healthy.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		bad := ""
		for _, s := range c.Servers {
			s.mu.Lock()
			running := s.cmd != nil
			s.mu.Unlock()
			if running && !s.Healthy() {
				bad = s.Name
				break
			}
		}
		if bad == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats server %s not healthy after %v:\n%s", bad, timeout, c.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Logs returns the end of every node's log.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, s := range c.Servers {
		l := s.Log()
		if len(l) > 4000 {
			l = l[len(l)-4000:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", s.Name, l)
	}
	return b.String()
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		s.Stop()
	}
}

var (
	sharedMu  sync.Mutex
	shared    *Cluster
	sharedDir string
)

// Shared is the 3-node JetStream cluster a package's tests share, started
// on first use and healthy when returned; a test that stops nodes starts
// them again before it ends. Main shuts it down.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		dir, err := os.MkdirTemp("", "natstest-cluster-")
		if err != nil {
			tb.Fatal(err)
		}
		sharedDir = dir
		shared = StartCluster(tb, 3, dir)
	}
	if err := shared.WaitHealthy(2 * time.Minute); err != nil {
		tb.Fatal(err)
	}
	return shared
}

// Main runs a package's tests, then shuts the shared cluster down and
// removes the server binary: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Shutdown()
		os.RemoveAll(sharedDir)
	}
	Cleanup()
	os.Exit(code)
}

// CPU is the server process's user + system CPU time so far (from
// /proc/PID/stat, in clock ticks of 10 ms); false when it is not running.
func (s *Server) CPU() (time.Duration, bool) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count the fields after its closing one.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	var ut, st int64
	if _, err := fmt.Sscan(f[11], &ut); err != nil {
		return 0, false
	}
	if _, err := fmt.Sscan(f[12], &st); err != nil {
		return 0, false
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}

// CPU is the CPU time of the cluster's running servers, summed.
func (c *Cluster) CPU() time.Duration {
	var t time.Duration
	for _, s := range c.Servers {
		if d, ok := s.CPU(); ok {
			t += d
		}
	}
	return t
}
