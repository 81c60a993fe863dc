// Package kernelcaps names what a kernel lets the sentry do (capabilities)
// and says what each kernel must offer: an explicit list per kernel of the
// vmtest matrix, and Decide for any other machine, from facts the kernel's
// release and files state. The capability suite (vmtest/capabilities) and
// the sensor's tests check their probes against it; product tests import
// this package, not vmtest.
package kernelcaps
