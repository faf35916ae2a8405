package codec

import (
	"math"
	"strconv"
)

// The writers below format as Prometheus' web/api/v1 JSON codec does, for
// the querier's JSON encoder and for answers turned from protobuf into
// JSON, so that both are the same bytes.

const hexDigits = "0123456789abcdef"

// AppendString quotes s as jsoniter's Stream.WriteString does: only quotes,
// backslashes and control characters are escaped.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendTimestamp writes milliseconds as seconds, as jsonutil.MarshalTimestamp.
func AppendTimestamp(b []byte, t int64) []byte {
	if t < 0 {
		b = append(b, '-')
		t = -t
	}
	b = strconv.AppendInt(b, t/1000, 10)
	if fraction := t % 1000; fraction != 0 {
		b = append(b, '.')
		if fraction < 100 {
			b = append(b, '0')
		}
		if fraction < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, fraction, 10)
	}
	return b
}

// AppendFloat writes a quoted value, as jsonutil.MarshalFloat.
func AppendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = append(b, '"')
	b = strconv.AppendFloat(b, f, format, -1, 64)
	return append(b, '"')
}

// appendBucket writes a native histogram bucket as jsonutil.MarshalHistogram.
func appendBucket(b []byte, boundaries int32, lower, upper, count float64) []byte {
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(boundaries), 10)
	b = append(b, ',')
	b = AppendFloat(b, lower)
	b = append(b, ',')
	b = AppendFloat(b, upper)
	b = append(b, ',')
	b = AppendFloat(b, count)
	return append(b, ']')
}
