package policy

import (
	"crypto/ed25519"
	"testing"
)

// FuzzVerify feeds arbitrary envelopes to Verify: never a panic, and
// nothing verifies without the trusted key's signature.
func FuzzVerify(f *testing.F) {
	seed := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := seed.Public().(ed25519.PublicKey)
	good, _ := Sign(bundle(1, ruleFile("a")), seed)
	f.Add(good)
	f.Add([]byte(`{"payload":"e30=","key_id":"x","signature":"AA=="}`))
	f.Add([]byte("- id: a\n"))
	f.Fuzz(func(t *testing.T, env []byte) {
		b, err := Verify(env, []ed25519.PublicKey{pub})
		if err != nil {
			return
		}
		again, _ := Sign(b, seed)
		if _, err := Verify(again, []ed25519.PublicKey{pub}); err != nil {
			t.Fatalf("a verified bundle does not verify once re-signed: %v", err)
		}
	})
}
