package bpfsign

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Object identifiers used in the message.
var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
)

// Signer is a private key and the certificate that names it.
type Signer struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
	// CertDER is the certificate as add_key(2) of type "asymmetric" takes it.
	CertDER []byte
}

// NewSigner makes a fresh 2048-bit RSA key and a self-signed certificate
// for it, valid for a day, with the given common name.
func NewSigner(commonName string) (*Signer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse own certificate: %w", err)
	}
	return &Signer{Key: key, Cert: cert, CertDER: der}, nil
}

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

type issuerAndSerial struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type signerInfo struct {
	Version            int
	SID                issuerAndSerial
	DigestAlgorithm    algorithmIdentifier
	SignatureAlgorithm algorithmIdentifier
	Signature          []byte
}

type encapContentInfo struct {
	ContentType asn1.ObjectIdentifier // detached: no eContent
}

type signedData struct {
	Version          int
	DigestAlgorithms []algorithmIdentifier `asn1:"set"`
	EncapContentInfo encapContentInfo
	SignerInfos      []signerInfo `asn1:"set"`
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     signedData `asn1:"explicit,tag:0"`
}

// ErrEmpty: there is nothing to sign (a program has at least one instruction).
var ErrEmpty = errors.New("no data to sign")

// Sign returns the DER PKCS#7 detached signature of data (the program's
// instructions, 8 bytes each, exactly as passed in attr->insns).
func (s *Signer) Sign(data []byte) ([]byte, error) {
	if s == nil || s.Key == nil || s.Cert == nil {
		return nil, errors.New("sign: no key or certificate")
	}
	if len(data) == 0 {
		return nil, ErrEmpty
	}
	digest := sha256.Sum256(data)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.Key, crypto.SHA256, digest[:])
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	null := asn1.RawValue{Tag: asn1.TagNull}
	msg := contentInfo{
		ContentType: oidSignedData,
		Content: signedData{
			Version:          1,
			DigestAlgorithms: []algorithmIdentifier{{Algorithm: oidSHA256, Parameters: null}},
			EncapContentInfo: encapContentInfo{ContentType: oidData},
			SignerInfos: []signerInfo{{
				Version:            1,
				SID:                issuerAndSerial{Issuer: asn1.RawValue{FullBytes: s.Cert.RawIssuer}, Serial: s.Cert.SerialNumber},
				DigestAlgorithm:    algorithmIdentifier{Algorithm: oidSHA256, Parameters: null},
				SignatureAlgorithm: algorithmIdentifier{Algorithm: oidRSAEncryption, Parameters: null},
				Signature:          sig,
			}},
		},
	}
	der, err := asn1.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#7: %w", err)
	}
	return der, nil
}

// Verify checks a signature made by Sign against data and cert: the same
// structure the kernel reads (signer by issuer and serial, sha256, RSA
// PKCS#1 v1.5, no authenticated attributes). For tests and fuzzing of the
// builder; the kernel is the verifier that counts.
func Verify(der, data []byte, cert *x509.Certificate) error {
	var msg contentInfo
	rest, err := asn1.Unmarshal(der, &msg)
	if err != nil {
		return fmt.Errorf("decode PKCS#7: %w", err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("decode PKCS#7: %d bytes after the message", len(rest))
	}
	if !msg.ContentType.Equal(oidSignedData) || !msg.Content.EncapContentInfo.ContentType.Equal(oidData) {
		return errors.New("not a detached SignedData over data")
	}
	if len(msg.Content.SignerInfos) != 1 {
		return fmt.Errorf("%d signer infos, want 1", len(msg.Content.SignerInfos))
	}
	si := msg.Content.SignerInfos[0]
	if si.SID.Serial == nil || si.SID.Serial.Cmp(cert.SerialNumber) != 0 || string(si.SID.Issuer.FullBytes) != string(cert.RawIssuer) {
		return errors.New("signer is not the certificate's issuer and serial")
	}
	if !si.DigestAlgorithm.Algorithm.Equal(oidSHA256) || !si.SignatureAlgorithm.Algorithm.Equal(oidRSAEncryption) {
		return errors.New("not sha256 with RSA")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("certificate key is not RSA")
	}
	digest := sha256.Sum256(data)
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], si.Signature)
}
