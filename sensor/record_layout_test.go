package sensor

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"testing"
	"unsafe"
)

// samePaddingAside compares a and b field by field, except the blank
// padding fields, which binary.Decode skips and decode copies.
func samePaddingAside(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).Name != "_" && !samePaddingAside(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Array:
		for i := range a.Len() {
			if !samePaddingAside(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	}
	return a.Interface() == b.Interface()
}

// decode copies record bytes into the generated types; binary.Decode, which
// it replaced, is the reference: same size (padding fields included) and
// the same value for any bytes.
func TestRecordTypesMirrorTheirBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(name string, size uintptr, viaDecode func([]byte) any, ref any) {
		t.Helper()
		if want := binary.Size(ref); int(size) != want {
			t.Fatalf("%s: %d bytes in memory, binary.Size %d: decode would misplace fields", name, size, want)
		}
		for range 20 {
			b := make([]byte, size+uintptr(rng.IntN(16)))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			want := reflect.New(reflect.TypeOf(ref)).Interface()
			if _, err := binary.Decode(b, binary.LittleEndian, want); err != nil {
				t.Fatalf("%s: binary.Decode: %v", name, err)
			}
			if got := viaDecode(b); !samePaddingAside(reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()) {
				t.Fatalf("%s: decode differs from binary.Decode for the same bytes", name)
			}
		}
	}
	check("header", unsafe.Sizeof(sentrySentryHeader{}), func(b []byte) any { return decode[sentrySentryHeader](b) }, sentrySentryHeader{})
	check("verdict", unsafe.Sizeof(sentrySentryVerdictRec{}), func(b []byte) any { return decode[sentrySentryVerdictRec](b) }, sentrySentryVerdictRec{})
	check("exit", unsafe.Sizeof(sentrySentryExit{}), func(b []byte) any { return decode[sentrySentryExit](b) }, sentrySentryExit{})
	check("tamper", unsafe.Sizeof(sentrySentryTamper{}), func(b []byte) any { return decode[sentrySentryTamper](b) }, sentrySentryTamper{})
	check("attach", unsafe.Sizeof(sentrySentryAttach{}), func(b []byte) any { return decode[sentrySentryAttach](b) }, sentrySentryAttach{})
	check("attach exit", unsafe.Sizeof(sentrySentryAttachExit{}), func(b []byte) any { return decode[sentrySentryAttachExit](b) }, sentrySentryAttachExit{})
	check("token", unsafe.Sizeof(sentrySentryTokenRec{}), func(b []byte) any { return decode[sentrySentryTokenRec](b) }, sentrySentryTokenRec{})
	check("map create", unsafe.Sizeof(sentrySentryMapCreate{}), func(b []byte) any { return decode[sentrySentryMapCreate](b) }, sentrySentryMapCreate{})
}
