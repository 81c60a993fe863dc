// Package policy distributes rule bundles to a fleet through a NATS
// JetStream key-value bucket: a bundle is the rule files of a directory,
// signed with ed25519; an agent applies only bundles signed by one of its
// keys, validates them exactly like rule files, and caches the last good one
// on disk so that it boots protected without the bus.
package policy
