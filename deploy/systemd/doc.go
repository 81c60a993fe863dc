// Package systemd holds the tests of the ebpf-sentry systemd unit
// (ebpf-sentry.service in this directory), which the .deb installs.
package systemd
