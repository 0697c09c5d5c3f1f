module github.com/opendatahub-io/model-registry-operator/hack/dsncheck

// The driver versions (and their dependencies) of the registry server's go.mod
// (github.com/kubeflow/model-registry v0.3.0), so DSNs are parsed as the server parses them.
go 1.24.4

require (
	github.com/go-sql-driver/mysql v1.9.3
	github.com/jackc/pgx/v5 v5.6.0
)

require (
	filippo.io/edwards25519 v1.1.0 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	golang.org/x/crypto v0.41.0 // indirect
	golang.org/x/text v0.28.0 // indirect
)
