// Package bpfsign signs eBPF programs the way Linux 6.18+ verifies a signed
// BPF_PROG_LOAD: a detached PKCS#7 (CMS) SignedData over the raw
// instruction bytes, without authenticated attributes, whose signer is
// named by issuer and serial number so that the kernel finds the key in the
// keyring the load names. It also makes the self-signed key and X.509
// certificate to put in that keyring. Tests use it to sign loaders at test
// time; it follows the formats (RFC 5652, RFC 5280), not any other signer.
package bpfsign
