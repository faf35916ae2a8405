package alertmanager

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	commoncfg "github.com/prometheus/common/config"

	"github.com/cortex-tls/cortex/pkg/alertmanager/alertstore"
	"github.com/cortex-tls/cortex/pkg/util/validation"
)

const (
	silencesFile = "silences"
	nflogFile    = "nflog"
	templatesDir = "templates"
)

// tenantConfig is one tenant's desired configuration.
type tenantConfig = alertstore.AlertConfig

// tenant is one tenant's Alertmanager: the long-lived state (alerts,
// silences, notification log) plus the configuration-scoped dispatcher and
// inhibitor, rebuilt on every apply.
type tenant struct {
	limits      func() *validation.Limits // the tenant's current limits
	id          string
	dir         string // <storage.path>/<tenant>, created and owned by us
	logger      *slog.Logger
	externalURL *url.URL
	retention   time.Duration
	// autoWebhookRoot is -alertmanager.configs.auto-webhook-root.
	autoWebhookRoot string
	startTime       time.Time
	reg             *prometheus.Registry
	// stored is set when the tenant runs a configuration read from the
	// alertmanager storage, rather than the fallback given on first use:
	// it stops when the storage no longer has it.
	stored bool
	// wait is how long the notification pipeline waits before sending:
	// with replication, this replica's position times -alertmanager.cluster.peer-timeout.
	wait func() time.Duration
	// settle is the gossip cluster whose settling notifications wait for
	// (nil without the cluster).
	settle notify.Peer
	// state replicates the silences and notification log (nil without
	// sharding); release forgets it in the alertmanager's index.
	state   *replicatedState
	release func()

	alerts            *mem.Alerts
	silences          *silence.Silences
	silencer          *silence.Silencer
	nflog             *nflog.Log
	pipelineBuilder   *notify.PipelineBuilder
	dispatcherMetrics *dispatch.DispatcherMetrics
	recorder          eventrecorder.Recorder
	// firewall dials for the receivers; rateLimited counts the
	// notifications the tenant's rate limits dropped, by integration.
	firewall    *firewallDialer
	rateLimited *prometheus.CounterVec
	// api bounds the GET API requests in flight (-alertmanager.api-concurrency).
	api *apiLimiter
	// maxRecvMsgSize is -alertmanager.max-recv-msg-size.
	maxRecvMsgSize int64

	stopc chan struct{}
	wg    sync.WaitGroup

	snapMtx sync.Mutex // serialises API-triggered silence snapshots

	mtx        sync.RWMutex
	cfg        tenantConfig
	conf       *config.Config
	route      *dispatch.Route
	dispatcher *dispatch.Dispatcher
	inhibitor  *inhibit.Inhibitor
}

func newTenant(id, dir string, cfg Config, externalURL *url.URL, logger *slog.Logger, limits func() *validation.Limits) (*tenant, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tenant %q: creating %s: %w", id, dir, err)
	}
	// Each tenant has its own registry: its instances come and go with its
	// configuration, and the libraries register fixed metric names.
	reg := prometheus.NewRegistry()
	ff := featurecontrol.NoopFlags{}
	rec := eventrecorder.NopRecorder()
	t := &tenant{
		id: id, dir: dir, logger: logger, externalURL: externalURL, retention: cfg.Retention,
		startTime: time.Now(), recorder: rec, stopc: make(chan struct{}), reg: reg,
		wait:            func() time.Duration { return 0 },
		autoWebhookRoot: cfg.AutoWebhookRoot,
		limits:          limits,
		firewall:        newFirewallDialer(limits),
		api:             newAPILimiter(cfg.APIConcurrency, reg),
		maxRecvMsgSize:  cfg.MaxRecvMsgSize,
		// Cortex's name: the process exports it with the tenant's user label.
		rateLimited: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "cortex_alertmanager_notification_rate_limited_total",
			Help: "Notifications dropped by the tenant's notification rate limits, by integration.",
		}, []string{"integration"}),
	}
	var err error
	t.nflog, err = nflog.New(nflog.Options{
		SnapshotFile: filepath.Join(dir, nflogFile),
		Retention:    cfg.Retention,
		Logger:       logger.With("component", "nflog"),
		Metrics:      reg,
	})
	if err != nil {
		return nil, fmt.Errorf("tenant %q: loading notification log %s: %w", id, filepath.Join(dir, nflogFile), err)
	}
	t.silences, err = silence.New(silence.Options{
		SnapshotFile:  filepath.Join(dir, silencesFile),
		Retention:     cfg.Retention,
		Logger:        logger.With("component", "silences"),
		Metrics:       reg,
		EventRecorder: rec,
		Limits: silence.Limits{
			MaxSilences:         func() int { return limits().AlertmanagerMaxSilencesCount },
			MaxSilenceSizeBytes: func() int { return limits().AlertmanagerMaxSilencesSizeBytes },
		},
	})
	if err != nil {
		return nil, fmt.Errorf("tenant %q: loading silences %s: %w", id, filepath.Join(dir, silencesFile), err)
	}
	interval := cfg.MaintenanceInterval
	if interval <= 0 {
		interval = 15 * time.Minute
	}
	t.wg.Go(func() { t.nflog.Maintenance(interval, filepath.Join(dir, nflogFile), t.stopc, nil) })
	t.wg.Go(func() { t.silences.Maintenance(interval, filepath.Join(dir, silencesFile), t.stopc, nil) })
	t.silencer = silence.NewSilencer(t.silences, logger, rec)
	t.alerts, err = mem.NewAlerts(context.Background(), cfg.GCInterval, 0, newAlertsLimiter(t.silencer, limits, reg), logger, rec, reg, ff)
	if err != nil {
		close(t.stopc)
		t.wg.Wait()
		return nil, fmt.Errorf("tenant %q: alert store: %w", id, err)
	}
	t.pipelineBuilder = notify.NewPipelineBuilder(reg, ff, rec)
	t.dispatcherMetrics = dispatch.NewDispatcherMetrics(false, reg, ff)
	return t, nil
}

// apply parses c and, if it is valid, swaps the running dispatcher and
// inhibitor for ones built from it. On error the running configuration is
// left untouched.
func (t *tenant) apply(c tenantConfig, trusted bool) error {
	conf, err := config.Load(c.AlertmanagerConfig)
	if err != nil {
		return fmt.Errorf("invalid Alertmanager configuration: %w", err)
	}
	setAutoWebhooks(conf, t.autoWebhookRoot, t.id)
	if !trusted {
		if err := checkNoHostFiles(conf); err != nil {
			return err
		}
	}
	paths, err := t.writeTemplates(c.TemplateFiles)
	if err != nil {
		return err
	}
	// Templates named in the config itself must stay inside the tenant's
	// directory: a tenant must not read another's files.
	for _, p := range conf.Templates {
		if !filepath.IsAbs(p) {
			p = filepath.Join(t.dir, templatesDir, p)
		}
		if rel, err := filepath.Rel(t.dir, p); err != nil || rel == ".." || filepath.IsAbs(rel) || len(rel) >= 3 && rel[:3] == ".."+string(filepath.Separator) {
			return fmt.Errorf("template %q is outside the tenant's directory; ship templates as template_files", p)
		}
		paths = append(paths, p)
	}
	tmpl, err := template.FromGlobs(paths)
	if err != nil {
		return fmt.Errorf("parsing templates: %w", err)
	}
	tmpl.ExternalURL = t.externalURL

	routes := dispatch.NewRoute(conf.Route, nil)
	active := map[string]struct{}{}
	routes.Walk(func(r *dispatch.Route) { active[r.RouteOpts.Receiver] = struct{}{} })
	receivers := make(map[string][]notify.Integration, len(active))
	for _, rcv := range conf.Receivers {
		if _, ok := active[rcv.Name]; !ok {
			continue
		}
		ints, err := receiver.BuildReceiverIntegrations(rcv, tmpl, t.logger, commoncfg.WithDialContextFunc(t.firewall.DialContext))
		if err != nil {
			return fmt.Errorf("receiver %q: %w", rcv.Name, err)
		}
		for i := range ints {
			ints[i] = rateLimited(guardEmail(ints[i], rcv, t.firewall), rcv.Name, t.limits, t.rateLimited)
		}
		receivers[rcv.Name] = ints
	}
	intervals := make(map[string][]timeinterval.TimeInterval, len(conf.MuteTimeIntervals)+len(conf.TimeIntervals))
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	intervener := timeinterval.NewIntervener(intervals)

	t.mtx.Lock()
	defer t.mtx.Unlock()
	if t.inhibitor != nil {
		t.inhibitor.Stop()
	}
	if t.dispatcher != nil {
		t.dispatcher.Stop()
	}
	inhibitor := inhibit.NewInhibitor(t.alerts, conf.InhibitRules, t.logger, t.recorder)
	wait := t.wait
	timeout := func(d time.Duration) time.Duration {
		if d < notify.MinTimeout {
			d = notify.MinTimeout
		}
		return d
	}
	pipeline := t.pipelineBuilder.New(receivers, wait, inhibitor, t.silencer, intervener, t.nflog, t.settle)
	disp := dispatch.NewDispatcher(t.alerts, routes, pipeline, intervener, timeout, 30*time.Second, aggregationGroupLimits(t.limits), t.logger, t.recorder, t.dispatcherMetrics, tmpl)
	go inhibitor.Run()
	inhibitor.WaitForLoading()
	go disp.Run(t.startTime)
	disp.WaitForLoading()
	t.inhibitor, t.dispatcher, t.route, t.conf, t.cfg = inhibitor, disp, routes, conf, c
	return nil
}

// writeTemplates writes the tenant's template files into its templates
// directory, removing files of earlier configurations from that directory
// only, and returns their paths.
func (t *tenant) writeTemplates(files map[string]string) ([]string, error) {
	dir := filepath.Join(t.dir, templatesDir)
	for name := range files {
		if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
			return nil, fmt.Errorf("template file name %q: must be a plain file name", name)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if _, keep := files[e.Name()]; !keep && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	paths := make([]string, 0, len(files))
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := writeFileAtomic(p, []byte(text)); err != nil {
			return nil, fmt.Errorf("writing template %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// snapshotSilences writes the silences to disk now, so a silence created
// through the API survives even an unclean stop.
func (t *tenant) snapshotSilences() {
	t.snapMtx.Lock()
	defer t.snapMtx.Unlock()
	p := filepath.Join(t.dir, silencesFile)
	f, err := os.CreateTemp(t.dir, silencesFile+".*.tmp")
	if err != nil {
		t.logger.Error("snapshotting silences", "err", err)
		return
	}
	if _, err := t.silences.Snapshot(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		t.logger.Error("snapshotting silences", "err", err)
		return
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		t.logger.Error("snapshotting silences", "err", err)
		return
	}
	if err := os.Rename(f.Name(), p); err != nil {
		t.logger.Error("snapshotting silences", "err", err)
	}
}

// stop stops notifying and snapshots the silences and notification log.
// Files stay on disk: the tenant's state returns with its configuration.
func (t *tenant) stop() {
	t.mtx.Lock()
	if t.inhibitor != nil {
		t.inhibitor.Stop()
	}
	if t.dispatcher != nil {
		t.dispatcher.Stop()
	}
	t.inhibitor, t.dispatcher = nil, nil
	t.mtx.Unlock()
	if t.state != nil {
		t.release()
		t.state.stop()
	}
	t.alerts.Close()
	t.snapMtx.Lock()
	close(t.stopc)
	t.wg.Wait()
	t.snapMtx.Unlock()
}
