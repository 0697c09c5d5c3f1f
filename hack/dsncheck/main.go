// Command dsncheck parses database DSNs with the drivers the registry server links
// (go-sql-driver/mysql, jackc/pgx's pgconn) and prints what they would connect to.
//
// Input: JSON lines on stdin, {"driver": "mysql"|"postgres", "dsn": "..."}.
// Output: one JSON line per input line,
//
//	{"ok": true, "host": str, "port": int, "database": str, "user": str, "password": str,
//	 "tls": str, "params": {str: str}}
//
// or {"ok": false, "error": str}. For mysql, tls is the DSN's tls parameter ("" if none)
// and params are every non-default parameter the driver keeps (as FormatDSN writes them);
// for postgres, tls is the sslmode pgconn configured (disable, allow, prefer, require,
// verify-ca, verify-full) and params are the run-time parameters sent to the server. The
// files a postgres DSN names (sslrootcert, sslcert, sslkey) are replaced by generated ones, as
// pgconn reads them while parsing.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

type request struct {
	Driver string `json:"driver"`
	DSN    string `json:"dsn"`
}

type parsed struct {
	OK       bool              `json:"ok"`
	Host     string            `json:"host"`
	Port     int               `json:"port"`
	Database string            `json:"database"`
	User     string            `json:"user"`
	Password string            `json:"password"`
	TLS      string            `json:"tls"`
	Params   map[string]string `json:"params"`
}

type failure struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

func parseMySQL(dsn string) (*parsed, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.Net != "tcp" {
		return nil, fmt.Errorf("network %q, not tcp", cfg.Net)
	}
	host, portText, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", portText, err)
	}
	// Every setting that differs from the driver's defaults, as the driver writes it back.
	params := map[string]string{}
	formatted := cfg.FormatDSN()
	tail := formatted[strings.LastIndexByte(formatted, '/')+1:]
	if _, query, found := strings.Cut(tail, "?"); found {
		for _, pair := range strings.Split(query, "&") {
			key, value, _ := strings.Cut(pair, "=")
			if unescaped, err := url.QueryUnescape(value); err == nil {
				value = unescaped
			}
			params[key] = value
		}
	}
	return &parsed{
		OK: true, Host: host, Port: port, Database: cfg.DBName, User: cfg.User, Password: cfg.Passwd,
		TLS: cfg.TLSConfig, Params: params,
	}, nil
}

func postgresTLS(cfg *pgconn.Config) string {
	hasTLSFallback, hasPlainFallback := false, false
	for _, fallback := range cfg.Fallbacks {
		if fallback.TLSConfig != nil {
			hasTLSFallback = true
		} else {
			hasPlainFallback = true
		}
	}
	tls := cfg.TLSConfig
	switch {
	case tls == nil && hasTLSFallback:
		return "allow"
	case tls == nil:
		return "disable"
	case hasPlainFallback:
		return "prefer"
	case tls.InsecureSkipVerify && tls.VerifyPeerCertificate != nil:
		return "verify-ca"
	case tls.InsecureSkipVerify:
		return "require"
	case tls.ServerName != "":
		return "verify-full"
	}
	return "unknown"
}

// standInFiles makes pgconn's file parameters (sslrootcert, sslcert, sslkey) readable here:
// pgconn reads them while parsing, and the paths name files in the registry's container. Each
// is replaced by a generated certificate or key of the same role, so the TLS configuration
// pgconn derives (the mode, a root pool, a client certificate) is the one the server gets.
func standInFiles(dsn string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn, nil // pgconn reports it
	}
	query := u.Query()
	changed := false
	for _, key := range []string{"sslrootcert", "sslcert", "sslkey"} {
		if query.Get(key) == "" {
			continue
		}
		certFile, keyFile, err := standIns()
		if err != nil {
			return "", err
		}
		if key == "sslkey" {
			query.Set(key, keyFile)
		} else {
			query.Set(key, certFile)
		}
		changed = true
	}
	if !changed {
		return dsn, nil
	}
	u.RawQuery = query.Encode()
	return u.String(), nil
}

var standInDir string

// standIns writes (once) a self-signed CA certificate and its key.
func standIns() (string, string, error) {
	certFile, keyFile := filepath.Join(standInDir, "cert.pem"), filepath.Join(standInDir, "key.pem")
	if standInDir != "" {
		return certFile, keyFile, nil
	}
	dir, err := os.MkdirTemp("", "dsncheck-")
	if err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dsncheck"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	standInDir = dir
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func parsePostgres(dsn string) (*parsed, error) {
	dsn, err := standInFiles(dsn)
	if err != nil {
		return nil, err
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	params := map[string]string{}
	for key, value := range cfg.RuntimeParams {
		params[key] = value
	}
	return &parsed{
		OK: true, Host: cfg.Host, Port: int(cfg.Port), Database: cfg.Database, User: cfg.User,
		Password: cfg.Password, TLS: postgresTLS(cfg), Params: params,
	}, nil
}

func check(line []byte) any {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return failure{Error: "bad request: " + err.Error()}
	}
	var result *parsed
	var err error
	switch req.Driver {
	case "mysql":
		result, err = parseMySQL(req.DSN)
	case "postgres":
		result, err = parsePostgres(req.DSN)
	default:
		err = errors.New(`driver must be "mysql" or "postgres"`)
	}
	if err != nil {
		return failure{Error: err.Error()}
	}
	return result
}

func main() {
	// pgconn fills what a DSN leaves out from PG* variables and ~/.pgpass: only the DSN counts.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "PG") {
			os.Unsetenv(name)
		}
	}
	os.Setenv("PGPASSFILE", os.DevNull)
	os.Setenv("PGSERVICEFILE", os.DevNull)

	defer func() {
		if standInDir != "" {
			os.RemoveAll(standInDir)
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		if len(strings.TrimSpace(in.Text())) == 0 {
			continue
		}
		if err := enc.Encode(check(in.Bytes())); err != nil {
			fail(err)
		}
	}
	if err := in.Err(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dsncheck:", err)
	if standInDir != "" {
		os.RemoveAll(standInDir)
	}
	os.Exit(1)
}
