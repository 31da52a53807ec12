package daemon

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Names of the CA's files in its directory.
const (
	CACertFile = "roster-ca.pem"     // the certificate, for clients to trust
	CAKeyFile  = "roster-ca-key.pem" // the private key, mode 0600, never served
)

// CAName is the common name of every CA rosterd creates.
const CAName = "roster local CA"

// Validity of what the CA signs. A leaf is renewed when less than
// leafRenewBefore of it is left.
const (
	CAValidity      = 10 * 365 * 24 * time.Hour
	LeafValidity    = 30 * 24 * time.Hour
	leafRenewBefore = 24 * time.Hour
	// clockSkew backdates certificates so that a client whose clock is a
	// little behind still accepts them.
	clockSkew = time.Hour
)

// DefaultLeafCacheSize bounds the leaf certificates a CA keeps.
const DefaultLeafCacheSize = 1024

// ErrCA is wrapped by every error about the CA's files.
var ErrCA = errors.New("roster CA")

// CA is rosterd's local certificate authority: it mints a leaf certificate
// for each host a client reaches through an intercepted tunnel, and keeps
// the latest DefaultLeafCacheSize of them. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	dir     string
	now     func() time.Time

	// leafKey signs every leaf: one key for all hosts, as mitmproxy does,
	// spares a key generation per host; it never leaves the process.
	leafKey *ecdsa.PrivateKey

	mu    sync.Mutex
	max   int
	lru   *list.List // of *leafEntry, most recent first
	byKey map[string]*list.Element
}

type leafEntry struct {
	host string
	cert *tls.Certificate
	exp  time.Time
}

// LoadOrCreateCA loads the CA in dir, or creates it there if dir holds
// neither of its files: an ECDSA P-256 key written with mode 0600 in a
// directory of mode 0700, and a self-signed certificate named CAName,
// valid for CAValidity. created reports which. It refuses a key file that
// group or others may read, a directory with only one of the two files,
// and a certificate that does not match its key. now is the clock of
// certificate validity; nil means time.Now.
func LoadOrCreateCA(dir string, now func() time.Time) (ca *CA, created bool, err error) {
	if now == nil {
		now = time.Now
	}
	if dir == "" {
		return nil, false, fmt.Errorf("%w: no directory given", ErrCA)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err = loadCA(dir, now)
		return ca, false, err
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		ca, err = createCA(dir, now)
		return ca, err == nil, err
	case certErr == nil:
		return nil, false, fmt.Errorf("%w: %s exists but its key %s does not: remove the certificate to make a new CA (and trust the new one)", ErrCA, certPath, keyPath)
	case keyErr == nil:
		return nil, false, fmt.Errorf("%w: %s exists but its certificate %s does not", ErrCA, keyPath, certPath)
	default:
		return nil, false, fmt.Errorf("%w: %w", ErrCA, errors.Join(certErr, keyErr))
	}
}

func createCA(dir string, now func() time.Time) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: creating %s: %w", ErrCA, dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: generating the key: %w", ErrCA, err)
	}
	t := now()
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			CommonName:   CAName,
			Organization: []string{"roster"},
			// Tells two installations apart in a trust store.
			OrganizationalUnit: []string{fmt.Sprintf("rosterd on %s, created %s", host, t.UTC().Format(time.DateOnly))},
		},
		NotBefore:             t.Add(-clockSkew),
		NotAfter:              t.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("%w: signing the certificate: %w", ErrCA, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the key: %w", ErrCA, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a certificate without its key is refused on the next
	// start, a key without its certificate too, and neither is half written.
	if err := writeFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	return loadCA(dir, now)
}

// writeFileAtomic writes data to a temporary file in the same directory,
// with the final mode from the start, and renames it into place.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("%w: writing %s: %w", ErrCA, path, err)
	}
	tmp := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("%w: writing %s: %w", ErrCA, path, err)
	}
	return nil
}

func loadCA(dir string, now func() time.Time) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if fi, err := os.Stat(keyPath); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCA, err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s has mode %v: anyone who reads it can impersonate any site to clients that trust the CA; chmod 600 it", ErrCA, keyPath, fi.Mode().Perm())
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCA, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCA, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s and %s: %w", ErrCA, certPath, keyPath, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCA, certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%w: %s is not a CA certificate", ErrCA, certPath)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %s: the key cannot sign", ErrCA, keyPath)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: generating the leaf key: %w", ErrCA, err)
	}
	// Only the first PEM block: the file is served, and must say no more.
	block, _ := pem.Decode(certPEM)
	return &CA{
		cert: cert, certPEM: pem.EncodeToMemory(block), key: signer, dir: dir, now: now,
		leafKey: leafKey, max: DefaultLeafCacheSize, lru: list.New(), byKey: map[string]*list.Element{},
	}, nil
}

// CertPEM returns the CA's certificate in PEM, for clients to trust.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// CertPath returns the path of the CA's certificate file.
func (ca *CA) CertPath() string { return filepath.Join(ca.dir, CACertFile) }

// Certificate returns the CA's parsed certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// SetCacheSize bounds the leaf cache to n certificates (n of 1 or more);
// call it before the CA is used.
func (ca *CA) SetCacheSize(n int) { ca.max = max(n, 1) }

// Leaf returns a certificate for host (a DNS name or an IP address, without
// port), signed by the CA, with host as its only subject alternative name,
// valid for LeafValidity, or at most until the CA expires. It comes from
// the cache while more than a day of it is left.
func (ca *CA) Leaf(host string) (*tls.Certificate, error) {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return nil, fmt.Errorf("%w: leaf for an empty host name", ErrCA)
	}
	now := ca.now()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if el, ok := ca.byKey[host]; ok {
		e := el.Value.(*leafEntry)
		if now.Add(leafRenewBefore).Before(e.exp) {
			ca.lru.MoveToFront(el)
			return e.cert, nil
		}
		ca.lru.Remove(el)
		delete(ca.byKey, host)
	}
	// Minted under the lock: a burst of tunnels to one new host signs
	// once, and signing (tens of microseconds) is rare next to handshakes.
	cert, exp, err := ca.mint(host, now)
	if err != nil {
		return nil, err
	}
	ca.byKey[host] = ca.lru.PushFront(&leafEntry{host: host, cert: cert, exp: exp})
	for ca.lru.Len() > ca.max {
		old := ca.lru.Back()
		ca.lru.Remove(old)
		delete(ca.byKey, old.Value.(*leafEntry).host)
	}
	return cert, nil
}

// cached reports how many leaves the cache holds; for tests.
func (ca *CA) cached() int {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.lru.Len()
}

func (ca *CA) mint(host string, now time.Time) (*tls.Certificate, time.Time, error) {
	exp := now.Add(LeafValidity)
	if exp.After(ca.cert.NotAfter) {
		exp = ca.cert.NotAfter
	}
	if !exp.After(now) {
		return nil, time.Time{}, fmt.Errorf("%w: the CA expired on %s: remove %s and %s to make a new one", ErrCA,
			ca.cert.NotAfter.UTC().Format(time.DateOnly), ca.CertPath(), filepath.Join(ca.dir, CAKeyFile))
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: host, Organization: []string{"roster"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              exp,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        ca.cert.SubjectKeyId,
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: leaf for %q: %w", ErrCA, host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: leaf for %q: %w", ErrCA, host, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: ca.leafKey, Leaf: leaf}, exp, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func keyID(pub *ecdsa.PublicKey) []byte {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(b) //nolint:gosec // a key identifier, RFC 5280 4.2.1.2, not a signature
	return sum[:]
}
