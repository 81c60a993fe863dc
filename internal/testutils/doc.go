// Package testutils holds helpers shared by the tests: privilege checks whose
// skips turn into failures in CI, and paths to the committed test programs.
package testutils
