package distributor

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/grafana/dskit/flagext"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/cortex-tls/cortex/pkg/tenant"
)

// OTLP/HTTP content types (OTLP specification, "OTLP/HTTP").
const (
	otlpContentTypeProtobuf = "application/x-protobuf"
	otlpContentTypeJSON     = "application/json"
)

// otlpSampleBudget is how many samples an OTLP request may translate to
// beyond one per byte of its decoded body; see otlpAppender.limit.
const otlpSampleBudget = 10_000

// OTLPConfig is the -distributor.otlp.* configuration: how OTLP metrics
// are translated to Prometheus series, with Cortex's flags and YAML keys.
type OTLPConfig struct {
	ConvertAllAttributes    bool `yaml:"convert_all_attributes"`
	DisableTargetInfo       bool `yaml:"disable_target_info"`
	AddMetricSuffixes       bool `yaml:"add_metric_suffixes"`
	AllowDeltaTemporality   bool `yaml:"allow_delta_temporality"`
	EnableTypeAndUnitLabels bool `yaml:"enable_type_and_unit_labels"`
}

// RegisterFlags registers the -distributor.otlp.* flags.
func (c *OTLPConfig) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.ConvertAllAttributes, "distributor.otlp.convert-all-attributes", false, "Copy every OTLP resource attribute onto each data point's attributes, so that all of them become labels of every series. -distributor.promote-resource-attributes must then be empty.")
	f.BoolVar(&c.DisableTargetInfo, "distributor.otlp.disable-target-info", false, "Do not write the target_info series that carries each OTLP resource's attributes.")
	f.BoolVar(&c.AddMetricSuffixes, "distributor.otlp.add-metric-suffixes", true, "Add the unit and type suffixes of Prometheus' OTLP translation to metric names (_seconds, _bytes, _ratio, _total, ...).")
	f.BoolVar(&c.AllowDeltaTemporality, "distributor.otlp.allow-delta-temporality", false, "Accept OTLP sums and histograms of delta temporality, stored as they are received. Otherwise a request holding one is refused with 400.")
	f.BoolVar(&c.EnableTypeAndUnitLabels, "distributor.otlp.enable-type-and-unit-labels", false, "Add the __type__ and __unit__ labels to the series translated from OTLP metrics.")
}

// registerOTLPFlags registers the OTLP flags of the distributor's Config.
func (c *Config) registerOTLPFlags(f *flag.FlagSet) {
	f.IntVar(&c.OTLPMaxRecvMsgSize, "distributor.otlp-max-recv-msg-size", 100<<20, "Largest OTLP request accepted on /api/v1/otlp/v1/metrics, in bytes, both as received and once decompressed; larger ones get 413.")
	f.Var((*flagext.StringSliceCSV)(&c.PromoteResourceAttributes), "distributor.promote-resource-attributes", "Comma-separated OTLP resource attributes to add as labels to every series of the resource (beyond service.name and service.instance.id, which become job and instance).")
	c.OTLP.RegisterFlags(f)
}

// validateOTLP checks the OTLP flags of the distributor's Config.
func (c *Config) validateOTLP() error {
	if c.OTLPMaxRecvMsgSize <= 0 || c.OTLPMaxRecvMsgSize > 1<<30 {
		return fmt.Errorf("-distributor.otlp-max-recv-msg-size must be between 1 and 1073741824 (1 GiB), got %d", c.OTLPMaxRecvMsgSize)
	}
	if c.OTLP.ConvertAllAttributes && len(c.PromoteResourceAttributes) > 0 {
		return fmt.Errorf("-distributor.promote-resource-attributes (%s) cannot be used with -distributor.otlp.convert-all-attributes=true, which already makes every resource attribute a label", strings.Join(c.PromoteResourceAttributes, ","))
	}
	for _, a := range c.PromoteResourceAttributes {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("-distributor.promote-resource-attributes %q has an empty attribute name", strings.Join(c.PromoteResourceAttributes, ","))
		}
	}
	return nil
}

// otlpSettings are the translation settings of the configuration.
func (c *Config) otlpSettings() prometheusremotewrite.Settings {
	s := prometheusremotewrite.Settings{
		DisableTargetInfo:       c.OTLP.DisableTargetInfo,
		AddMetricSuffixes:       c.OTLP.AddMetricSuffixes,
		AllowDeltaTemporality:   c.OTLP.AllowDeltaTemporality,
		EnableTypeAndUnitLabels: c.OTLP.EnableTypeAndUnitLabels,
	}
	if !c.OTLP.ConvertAllAttributes {
		s.PromoteResourceAttributes = prometheusremotewrite.NewPromoteResourceAttributes(config.OTLPConfig{
			PromoteResourceAttributes: flagext.StringSliceCSV(c.PromoteResourceAttributes),
		})
	}
	return s
}

// otlpRequest is an OTLP request being served: its bytes, and the
// remote-write request it translates to, which the push owns until it
// releases it.
type otlpRequest struct {
	body bytes.Buffer // as received
	raw  bytes.Buffer // decompressed
	gz   *gzip.Reader
	wr   prompb.WriteRequest
	app  otlpAppender
}

func (d *Distributor) getOTLPRequest() *otlpRequest {
	if or, ok := d.otlpRequests.Get().(*otlpRequest); ok {
		return or
	}
	return &otlpRequest{}
}

func (d *Distributor) putOTLPRequest(or *otlpRequest) {
	// Big buffers are dropped along with the series of the request.
	if or.body.Cap() > maxPooledBytes || or.raw.Cap() > maxPooledBytes || or.app.series > maxPooledBytes/64 {
		return
	}
	or.app.reset(nil, 0)
	d.otlpRequests.Put(or)
}

// OTLPHandler serves POST /api/v1/otlp/v1/metrics: OTLP/HTTP metrics,
// protobuf or JSON, uncompressed or gzip. The metrics are translated to
// Prometheus series by Prometheus' own OTLP translation and go through
// the remote-write path: the same tenant, validation, limits and answers.
// The tenant must already be in the request context.
//
// Answers: 200 with an empty ExportMetricsServiceResponse when everything
// was written; 400 for a body that does not decode or translate (delta
// temporality without -distributor.otlp.allow-delta-temporality, for one:
// nothing is written), or naming the first invalid series (the rest is
// written); 413 for a body over -distributor.otlp-max-recv-msg-size, as
// received or decompressed; 415 for an unsupported Content-Type or
// Content-Encoding; 429 and 5xx as remote write.
func (d *Distributor) OTLPHandler() http.Handler {
	return http.HandlerFunc(d.serveOTLP)
}

func (d *Distributor) serveOTLP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "OTLP metrics ingestion needs POST", http.StatusMethodNotAllowed)
		return
	}
	contentType, err := parseOTLPContentType(r.Header.Get("Content-Type"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	gzipped := false
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		gzipped = true
	default:
		http.Error(w, fmt.Sprintf("unsupported Content-Encoding %q: OTLP bodies must be gzip-compressed or uncompressed", enc), http.StatusUnsupportedMediaType)
		return
	}
	userID, err := tenant.ID(r.Context())
	if err != nil {
		http.Error(w, "no tenant: "+err.Error(), http.StatusUnauthorized)
		return
	}

	or := d.getOTLPRequest()
	err = d.readOTLPBody(r, or, gzipped)
	if err == nil {
		err = d.translateOTLP(r.Context(), userID, contentType, or)
	}
	if err != nil {
		d.putOTLPRequest(or)
		d.writeError(w, userID, err)
		return
	}
	_, err = d.push(r.Context(), userID, &or.wr, &source{release: func() { d.putOTLPRequest(or) }})
	if err != nil {
		d.writeError(w, userID, err)
		return
	}
	// An empty ExportMetricsServiceResponse: no partial success.
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	if contentType == otlpContentTypeJSON {
		_, _ = io.WriteString(w, "{}")
	}
}

// parseOTLPContentType returns the media type of an OTLP/HTTP body.
func parseOTLPContentType(ct string) (string, error) {
	if ct == "" {
		return "", fmt.Errorf("missing Content-Type: OTLP bodies are %s or %s", otlpContentTypeProtobuf, otlpContentTypeJSON)
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("unsupported Content-Type %q: %v", ct, err)
	}
	if mt != otlpContentTypeProtobuf && mt != otlpContentTypeJSON {
		return "", fmt.Errorf("unsupported Content-Type %q: OTLP bodies are %s or %s", ct, otlpContentTypeProtobuf, otlpContentTypeJSON)
	}
	return mt, nil
}

// readOTLPBody reads the body into or.raw, decompressed, never holding more
// than -distributor.otlp-max-recv-msg-size bytes of it, compressed or not.
func (d *Distributor) readOTLPBody(r *http.Request, or *otlpRequest, gzipped bool) error {
	limit := d.cfg.OTLPMaxRecvMsgSize
	tooLarge := func(what string, n int64) error {
		size := ""
		if n > 0 {
			size = fmt.Sprintf(" (%d bytes)", n)
		}
		return &PushError{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("%s%s is larger than -distributor.otlp-max-recv-msg-size (%d bytes)", what, size, limit)}
	}
	if r.ContentLength > int64(limit) {
		return tooLarge("request body", r.ContentLength)
	}
	dst := &or.raw
	if gzipped {
		dst = &or.body
	}
	dst.Reset()
	if r.ContentLength > 0 {
		dst.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := dst.ReadFrom(io.LimitReader(r.Body, int64(limit)+1)); err != nil {
		return &PushError{Code: http.StatusBadRequest, Msg: "reading request body: " + err.Error()}
	}
	if dst.Len() > limit {
		return tooLarge("request body", 0)
	}
	if !gzipped {
		return nil
	}

	src := bytes.NewReader(or.body.Bytes())
	var err error
	if or.gz == nil {
		or.gz, err = gzip.NewReader(src)
	} else {
		err = or.gz.Reset(src)
	}
	if err != nil {
		return &PushError{Code: http.StatusBadRequest, Msg: "decompressing gzip request body: " + err.Error()}
	}
	or.raw.Reset()
	// Decompression stops one byte past the limit: a small body that
	// inflates to gigabytes costs no more than the limit.
	if _, err := or.raw.ReadFrom(io.LimitReader(or.gz, int64(limit)+1)); err != nil {
		return &PushError{Code: http.StatusBadRequest, Msg: "decompressing gzip request body: " + err.Error()}
	}
	if or.raw.Len() > limit {
		return tooLarge("decompressed request body", 0)
	}
	return nil
}

// translateOTLP decodes or.raw and translates it into or.wr.
func (d *Distributor) translateOTLP(ctx context.Context, userID, contentType string, or *otlpRequest) error {
	req := pmetricotlp.NewExportRequest()
	var err error
	if contentType == otlpContentTypeJSON {
		err = req.UnmarshalJSON(or.raw.Bytes())
	} else {
		err = req.UnmarshalProto(or.raw.Bytes())
	}
	if err != nil {
		return &PushError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("decoding OTLP %s request: %v", contentType, err)}
	}
	md := req.Metrics()
	if d.cfg.OTLP.ConvertAllAttributes {
		copyResourceAttributes(md)
	}

	or.app.reset(&or.wr, or.raw.Len()+otlpSampleBudget)
	conv, _ := d.otlpConverters.Get().(*prometheusremotewrite.PrometheusConverter)
	if conv == nil {
		conv = prometheusremotewrite.NewPrometheusConverter(nil)
	}
	conv.Reset(&or.app)
	settings := d.otlpSettings
	settings.EnableTypeAndUnitLabels = settings.EnableTypeAndUnitLabels || d.limits.For(userID).EnableTypeAndUnitLabels
	annots, err := conv.FromMetrics(ctx, md, settings)
	conv.Reset(nil)
	d.otlpConverters.Put(conv)

	if ws, _ := annots.AsStrings("", 0, 0); len(ws) > 0 {
		d.logger.Debug("OTLP translation warnings", "tenant", userID, "warnings", strings.Join(ws, "; "))
	}
	if or.app.err != nil {
		return or.app.err
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return &PushError{Code: http.StatusServiceUnavailable, Msg: "translating OTLP metrics: " + err.Error()}
		}
		msg := "translating OTLP metrics: " + strings.ReplaceAll(err.Error(), "\n", "; ")
		if !d.cfg.OTLP.AllowDeltaTemporality && hasDeltaTemporality(md) {
			msg += "; delta temporality is accepted only with -distributor.otlp.allow-delta-temporality=true"
		}
		return &PushError{Code: http.StatusBadRequest, Msg: msg}
	}
	return nil
}

// copyResourceAttributes copies each resource's attributes onto the
// attributes of every data point of its metrics, replacing a data point's
// attribute of the same name, as Cortex does for
// -distributor.otlp.convert-all-attributes.
func copyResourceAttributes(md pmetric.Metrics) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		res := rms.At(i).Resource().Attributes()
		if res.Len() == 0 {
			continue
		}
		add := func(attrs pcommon.Map) {
			res.Range(func(k string, v pcommon.Value) bool {
				v.CopyTo(attrs.PutEmpty(k))
				return true
			})
		}
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					for p := range m.Gauge().DataPoints().Len() {
						add(m.Gauge().DataPoints().At(p).Attributes())
					}
				case pmetric.MetricTypeSum:
					for p := range m.Sum().DataPoints().Len() {
						add(m.Sum().DataPoints().At(p).Attributes())
					}
				case pmetric.MetricTypeHistogram:
					for p := range m.Histogram().DataPoints().Len() {
						add(m.Histogram().DataPoints().At(p).Attributes())
					}
				case pmetric.MetricTypeExponentialHistogram:
					for p := range m.ExponentialHistogram().DataPoints().Len() {
						add(m.ExponentialHistogram().DataPoints().At(p).Attributes())
					}
				case pmetric.MetricTypeSummary:
					for p := range m.Summary().DataPoints().Len() {
						add(m.Summary().DataPoints().At(p).Attributes())
					}
				}
			}
		}
	}
}

// hasDeltaTemporality tells whether a sum or histogram of md has delta
// temporality.
func hasDeltaTemporality(md pmetric.Metrics) bool {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				t := pmetric.AggregationTemporalityUnspecified
				switch m := ms.At(k); m.Type() {
				case pmetric.MetricTypeSum:
					t = m.Sum().AggregationTemporality()
				case pmetric.MetricTypeHistogram:
					t = m.Histogram().AggregationTemporality()
				case pmetric.MetricTypeExponentialHistogram:
					t = m.ExponentialHistogram().AggregationTemporality()
				}
				if t == pmetric.AggregationTemporalityDelta {
					return true
				}
			}
		}
	}
	return false
}
