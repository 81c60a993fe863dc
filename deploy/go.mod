module github.com/ebpf-sentry/ebpf-sentry/deploy

go 1.26.8

require github.com/ebpf-sentry/ebpf-sentry v0.0.0

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	golang.org/x/exp/typeparams v0.0.0-20260209203927-2842357ff358 // indirect
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
	honnef.co/go/tools v0.8.2 // indirect
)

replace github.com/ebpf-sentry/ebpf-sentry => ../

tool honnef.co/go/tools/cmd/staticcheck
