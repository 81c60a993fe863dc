// Package console serves the read-only local web console of "run --ui": the
// live event feed (server-sent events, filtered by verdict, loader and rule),
// a page per program with the HTML report of package report, and the
// counters of the Prometheus metrics. Every request must carry the random
// token printed at start (as ?token= once, then a same-site cookie); the
// console changes nothing on the host.
package console
