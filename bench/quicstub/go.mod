// This module stands in for github.com/bogdanfinn/quic-go-utls in the bench
// module only (a replace in ../go.mod); see http3/http3.go.
module github.com/bogdanfinn/quic-go-utls

go 1.24.1

require (
	github.com/bogdanfinn/fhttp v0.6.2
	github.com/bogdanfinn/utls v1.7.4-barnius
)

require (
	github.com/andybalholm/brotli v1.1.1 // indirect
	github.com/cloudflare/circl v1.5.0 // indirect
	github.com/klauspost/compress v1.17.11 // indirect
	golang.org/x/crypto v0.36.0 // indirect
	golang.org/x/net v0.38.0 // indirect
	golang.org/x/sys v0.31.0 // indirect
	golang.org/x/text v0.23.0 // indirect
)
