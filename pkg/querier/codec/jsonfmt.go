package codec

import (
	"math"
	"strconv"
)

// The writers below format as Prometheus' web/api/v1 JSON codec does (and
// the querier's JSON encoder), so that an answer turned from protobuf into
// JSON is the same bytes as one encoded in JSON at the querier.

const hexDigits = "0123456789abcdef"

// appendString quotes s as jsoniter's Stream.WriteString does: only quotes,
// backslashes and control characters are escaped.
func appendString(b []byte, s string) []byte {
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

// appendTimestamp writes milliseconds as seconds, as jsonutil.MarshalTimestamp.
func appendTimestamp(b []byte, t int64) []byte {
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

// appendFloat writes a quoted value, as jsonutil.MarshalFloat.
func appendFloat(b []byte, f float64) []byte {
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
	b = appendFloat(b, lower)
	b = append(b, ',')
	b = appendFloat(b, upper)
	b = append(b, ',')
	b = appendFloat(b, count)
	return append(b, ']')
}
