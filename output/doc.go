// Package output turns what the sentry sees into telemetry other systems can
// ingest: a versioned event schema (documented in docs/EVENTS.md and
// docs/event.schema.json), a pipeline that fans events out to any number of
// sinks (stdout, rotating files, syslog over UDP/TCP/unix sockets, HTTP
// webhooks) through bounded queues that never block the producer, and the
// Prometheus metrics that count what was seen and what could not be delivered.
package output
