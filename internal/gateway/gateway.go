package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/auth"
	"github.com/sluice-ssh/sluice/internal/chainer"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/console"
	"github.com/sluice-ssh/sluice/internal/fleet"
	"github.com/sluice-ssh/sluice/internal/hostcert"
	"github.com/sluice-ssh/sluice/internal/hostkey"
	"github.com/sluice-ssh/sluice/internal/metrics"
	"github.com/sluice-ssh/sluice/internal/mfa"
	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/router"
	"github.com/sluice-ssh/sluice/internal/service"
	"github.com/sluice-ssh/sluice/internal/session"
	"github.com/sluice-ssh/sluice/internal/sshproxy"
	"github.com/sluice-ssh/sluice/internal/thin"
	"github.com/sluice-ssh/sluice/internal/usercert"
	"github.com/sluice-ssh/sluice/internal/zone"
	"github.com/sluice-ssh/sluice/sshsession"
)

// Gateway is a running set of services built from one config.
type Gateway struct {
	cfg    *config.Config
	logger *slog.Logger
	store  audit.Store
	queue  *audit.Queue
	// sampler bounds the audit events of refused unauthenticated clients
	// in front of queue; audit observes every event in the metrics, then
	// hands it to sampler. Everything the gateway audits goes to audit.
	sampler   *audit.Sampler
	audit     audit.Sink
	auditMode audit.Mode

	hostKeys []ssh.Signer
	startups *service.Startups
	metrics  *metrics.Metrics
	// adminListener serves /metrics and /healthz; nil when not configured.
	adminListener net.Listener
	// console and consoleListener serve the operators' console; nil when
	// console.listen is not set.
	console         *console.Server
	consoleListener net.Listener

	// mu guards cfg (written by Reload), services, addrs, listens and
	// retired. Reload holds reloadMu throughout, so only one runs at a time.
	mu       sync.Mutex
	reloadMu sync.Mutex
	services []*service.Service
	addrs    map[string]net.Addr
	listens  map[string]string // service name -> configured listen address
	retired  []*service.Service
	running  bool // between Run's start and its shutdown
	// instances numbers each service's sessions, by service name; kept
	// across reloads, so that a service whose listener a reload replaced
	// goes on counting.
	instances map[string]*audit.Instances

	// loginLog thins the failed-login log lines (see loginLogBurst).
	loginLog *thin.Burst[struct{}]

	wg sync.WaitGroup

	ops operatorState // recording and audit failures (operator.go)

	// held counts live sessions per role and user (access.go).
	held roleSessions

	// codes checks TOTP codes for every service, across reloads, so
	// that a code accepted once is refused everywhere after (in a fleet,
	// on every node: joinFleet).
	codes *mfa.Verifier
	// live are the live sessions' recordings and pty channels, for the
	// console's live view and joins (join.go).
	live liveRecordings
	// inners are the live inner sessions of jumps (jump.go).
	inners innerSessions
	// fleet is the node's membership of a fleet (fleet.go); nil without
	// gateway.fleet. stopFleet, set by Run, stops it and frees the name.
	fleet      *fleet.Member
	fleetLease time.Duration // gateway.fleet.lease at start
	stopFleet  func()
	// draining is set when shutdown starts: /readyz answers 503.
	draining atomic.Bool
}

// New builds every part of the gateway from cfg and opens the listeners. It
// serves nothing until Run.
//
// On error every part already built is closed again, in reverse order, and
// the error says which part failed.
func New(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*Gateway, error) {
	g := &Gateway{cfg: cfg, logger: logger, addrs: make(map[string]net.Addr), listens: make(map[string]string), instances: make(map[string]*audit.Instances), codes: mfa.NewVerifier(nil)}
	// closers undo what New built; they close over g, which stays set
	// whatever New returns.
	var closers []func()
	built := false
	defer func() {
		if !built {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	if err := os.MkdirAll(cfg.Gateway.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway: state dir: %w", err)
	}
	store, err := audit.Open(ctx, cfg.Audit.Sink, cfg.Gateway.StateDir, cfg.Gateway.Name)
	if err != nil {
		return nil, fmt.Errorf("gateway: audit store: %w", err)
	}
	g.store = store
	// Until the queue owns the store, closing the store is ours to do.
	closers = append(closers, func() {
		if g.queue == nil {
			g.store.Close()
		}
	})
	if err := g.joinFleet(ctx); err != nil {
		return nil, err
	}
	closers = append(closers, func() {
		if g.fleet != nil {
			lctx, cancel := context.WithTimeout(context.Background(), fleetLeaveTimeout)
			defer cancel()
			_ = g.fleet.Leave(lctx)
		}
	})
	if err := g.endOrphans(ctx); err != nil {
		return nil, err
	}
	mode := audit.FailClosed
	if cfg.Audit.OnFailure == config.BestEffort {
		mode = audit.BestEffort
	}
	g.metrics = metrics.New()
	if cfg.Gateway.Admin.Listen != "" {
		if g.adminListener, err = metrics.Listen(cfg.Gateway.Admin.Listen); err != nil {
			return nil, fmt.Errorf("gateway: admin.listen: %w", err)
		}
		closers = append(closers, func() { g.adminListener.Close() })
	}
	g.auditMode = mode
	g.ops.auditFailed = make(chan struct{}, 1)
	g.queue = audit.NewQueue(g.store, audit.QueueParams{Size: cfg.Audit.QueueSize, Mode: mode, Logger: logger, OnUnhealthy: g.auditUnhealthy, ProbeInterval: cfg.Audit.ProbeInterval.Std()})
	closers = append(closers, func() { g.queue.Close(context.Background()) })
	g.sampler = audit.NewSampler(g.queue, audit.SamplerParams{Sampled: unauthenticatedRefusal, Logger: logger})
	g.loginLog = &thin.Burst[struct{}]{Burst: loginLogBurst, Window: loginLogWindow, Report: func(held map[struct{}]int64, _ int64) {
		logger.Warn("failed logins not logged one by one", "count", held[struct{}{}], "window", loginLogWindow)
	}}
	closers = append(closers, g.sampler.Close)
	g.audit = observingSink{next: g.sampler, m: g.metrics, fleet: g.fleet}
	g.metrics.WatchAudit(g.queue.Healthy, g.queue.Dropped, g.sampler.Summarised)

	zones, err := buildZones(cfg)
	if err != nil {
		return nil, err
	}
	types := make([]string, 0, len(cfg.Gateway.HostKeyTypes))
	for _, t := range cfg.Gateway.HostKeyTypes {
		types = append(types, string(t))
	}
	hostKeys, err := hostkey.LoadOrGenerate(cfg.Gateway.StateDir, types)
	if err != nil {
		return nil, fmt.Errorf("gateway: host keys: %w", err)
	}
	authn, err := g.authenticator(cfg)
	if err != nil {
		return nil, err
	}
	g.hostKeys = hostKeys
	if err := g.buildConsole(); err != nil {
		return nil, err
	}
	closers = append(closers, func() {
		if g.consoleListener != nil {
			g.consoleListener.Close()
		}
	})
	g.startups = service.NewStartups(startupsParams(cfg))
	acc, err := g.buildAccess(cfg)
	if err != nil {
		return nil, err
	}
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		p, err := g.buildService(cfg, sc, zones, hostKeys, authn, acc)
		if err != nil {
			return nil, err
		}
		if p.Listener, err = g.listen(sc); err != nil {
			return nil, err
		}
		svc := service.New(p)
		closers = append(closers, func() { svc.Close() })
		g.services = append(g.services, svc)
		g.addrs[sc.Name] = p.Listener.Addr()
		g.listens[sc.Name] = sc.Listen
	}
	built = true
	return g, nil
}

// Addr returns the address a service listens on, or nil.
func (g *Gateway) Addr(service string) net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.addrs[service]
}

// Store returns the audit store, for queries.
func (g *Gateway) Store() audit.Store { return g.store }

// Run serves every service until ctx is done, then drains them for up to
// the configured drain timeout and closes what is left.
func (g *Gateway) Run(ctx context.Context) error {
	g.stopFleet = g.startFleet()
	stopOperator, err := g.startOperator()
	if err != nil {
		g.shutdown()
		return err
	}
	svcs := g.serving()
	stopMetrics := g.serveMetrics()
	defer stopMetrics()
	errs := make(chan error, len(svcs))
	for _, s := range svcs {
		g.wg.Go(func() {
			if err := s.Serve(); err != nil && !errors.Is(err, service.ErrServerClosed) {
				errs <- err
			}
		})
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
	}
	g.shutdown()
	stopOperator()
	return runErr
}

// shutdown drains every service, then closes the audit queue and store.
func (g *Gateway) shutdown() {
	g.draining.Store(true)
	if d := g.drainDelay(); d > 0 {
		g.logger.Info("draining: not ready, listeners open for drain_delay", "delay", d)
		time.Sleep(d)
	}
	drain, cancel := context.WithTimeout(context.Background(), g.drainTimeout().Std())
	defer cancel()
	svcs := g.stopServing()
	live := 0
	for _, s := range svcs {
		live += len(s.Live())
	}
	g.logger.Info("draining: listeners closed, waiting for live sessions", "sessions", live, "timeout", g.drainTimeout().Std())
	var wg sync.WaitGroup
	for _, s := range svcs {
		wg.Go(func() {
			if err := s.Shutdown(drain); err != nil {
				cut := s.Live()
				g.logger.Warn("drain timeout: ending live sessions", "service", s.Name(), "sessions", len(cut))
				farewell(cut)
				s.Close()
			}
		})
	}
	wg.Wait()
	g.wg.Wait()
	if g.stopFleet != nil {
		g.stopFleet()
	}
	qctx, qcancel := context.WithTimeout(context.Background(), g.drainTimeout().Std())
	defer qcancel()
	// The sampler writes its last summaries to the queue; the queue owns
	// the store: closing it drains the queue, then closes the store.
	g.sampler.Close()
	g.loginLog.Flush()
	if err := g.queue.Close(qctx); err != nil {
		g.logger.Error("closing the audit queue", "err", err)
	}
	g.logger.Info("stopped")
}

// msgShutdown is what the client of a session still live at the drain
// timeout reads on its stderr before the gateway closes the connection.
const msgShutdown = "sluice: gateway shutting down, session ended\r\n"

// farewellTimeout bounds the wait for msgShutdown to reach the clients: a
// client that does not read is cut off without it.
const farewellTimeout = time.Second

// farewell tells the clients of live sessions that the gateway is ending
// them, waiting for at most farewellTimeout.
func farewell(live []*session.Master) {
	ctx, cancel := context.WithTimeout(context.Background(), farewellTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, m := range live {
		wg.Go(func() { sshproxy.Farewell(ctx, m, msgShutdown) })
	}
	wg.Wait()
}

func buildZones(cfg *config.Config) (*zone.Tree, error) {
	specs := make([]zone.Spec, 0, len(cfg.Zones))
	for _, z := range cfg.Zones {
		specs = append(specs, zone.Spec{Name: z.Name, Parent: z.Parent, Networks: z.Networks})
	}
	t, err := zone.New(specs)
	if err != nil {
		return nil, fmt.Errorf("gateway: zones: %w", err)
	}
	return t, nil
}

func (g *Gateway) authenticator(cfg *config.Config) (*auth.Authenticator, error) {
	users := make([]auth.User, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		users = append(users, auth.User{Name: u.Name, AuthorizedKeysFile: u.AuthorizedKeys, PasswordHash: u.PasswordHash, Groups: u.Groups})
	}
	var cas []ssh.PublicKey
	for _, path := range cfg.TrustedUserCAKeys {
		keys, err := auth.ReadPublicKeys(path)
		if err != nil {
			return nil, fmt.Errorf("gateway: trusted_user_ca_keys: %w", err)
		}
		cas = append(cas, keys...)
	}
	so, err := signOn(cfg.OIDC)
	if err != nil {
		return nil, err
	}
	params := auth.Params{
		Users:         users,
		TrustedCAKeys: cas,
		MaxAuthTries:  cfg.Gateway.MaxAuthTries,
		UserName:      router.GatewayUser,
	}
	if so != nil {
		params.SignOn, params.AutoProvision = so, cfg.OIDC.AutoProvision
	}
	a, err := auth.New(params)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return a, nil
}

// buildService builds a service's proxy and the service parameters from
// cfg, the config sc belongs to, and acc, cfg's roles (nil without); the
// caller adds the Listener.
func (g *Gateway) buildService(cfg *config.Config, sc *config.Service, zones *zone.Tree, hostKeys []ssh.Signer, authn *auth.Authenticator, acc *accessRules) (service.Params, error) {
	prefix := "gateway: services[" + sc.Name + "]: "
	pol, err := policy.Compile(sc.Name, policySpec(sc.Policy))
	if err != nil {
		return service.Params{}, fmt.Errorf("%s%w", prefix, err)
	}
	stepUp, err := policy.NewStepUp("services["+sc.Name+"].mfa.required_for", sc.MFA.RequiredFor)
	if err != nil {
		return service.Params{}, fmt.Errorf("%s%w", prefix, err)
	}
	second := g.secondFactor(cfg, sc)
	checker, err := hostkey.NewChecker(sc.Upstream.KnownHosts)
	if err != nil {
		return service.Params{}, fmt.Errorf("%supstream.known_hosts: %w", prefix, err)
	}
	var signers []ssh.Signer
	if sc.Upstream.Identity != "" {
		pem, err := os.ReadFile(sc.Upstream.Identity)
		if err != nil {
			return service.Params{}, fmt.Errorf("%supstream.identity: %w", prefix, err)
		}
		s, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return service.Params{}, fmt.Errorf("%supstream.identity: %w", prefix, err)
		}
		signers = append(signers, s)
	}
	var certs *usercert.Authority
	if sc.Upstream.UserCA != "" {
		if certs, err = usercert.Load(sc.Upstream.UserCA, string(sc.Upstream.UserCAType), sc.Upstream.UserCAPrevious); err != nil {
			return service.Params{}, fmt.Errorf("%supstream.user_ca: %w", prefix, err)
		}
	}
	serverZones := sc.ServerZones
	serverRule := "services[" + sc.Name + "].server_zones"
	permit := func(addr netip.AddrPort) error {
		z, _ := zones.Lookup(addr.Addr())
		return session.Permit(session.StageServer, addr, z, serverZones, serverRule)
	}
	ch := chainer.New(chainer.Params{
		Timeout:  sc.ConnectTimeout.Std(),
		DownTTL:  sc.DownHostTTL.Std(),
		Resolver: net.DefaultResolver,
		Permit:   permit,
		Dialer:   &net.Dialer{},
	})
	scfg := &ssh.ServerConfig{ServerVersion: "SSH-2.0-Sluice"}
	scfg.SetDefaults()
	serverAlgorithms(scfg)
	for _, k := range hostKeys {
		scfg.AddHostKey(k)
	}
	rt := router.New(router.Params{Service: sc.Name, Inband: sc.Router.Inband, Directed: sc.Router.Directed, Users: sc.Router.Users, Hosts: acc.hosts(), NamesOnly: acc != nil})
	var jump *sshproxy.Jump
	if sc.Router.Jump && acc != nil {
		if jump, err = g.jump(cfg, sc, zones, hostKeys, authn, second, rt); err != nil {
			return service.Params{}, err
		}
	}
	clientAuthn := authn
	var hostCA *hostcert.Authority
	if sc.Router.Transparent {
		// The SSH user name is the upstream login: the key names the user.
		clientAuthn = authn.ByKey()
		if hostCA, err = hostcert.Load(cfg.Gateway.StateDir); err != nil {
			return service.Params{}, fmt.Errorf("%srouter.transparent: %w", prefix, err)
		}
	}
	proxy := sshproxy.New(sshproxy.Params{
		Service: sc.Name,
		Router:  rt,
		Chainer: ch,
		Upstream: sshproxy.Upstream{
			User:         sc.Upstream.LoginUser,
			Signers:      signers,
			Certificates: certs,
			Password:     sc.Upstream.Password,
			HostKeys:     checker,
			Timeout:      sc.ConnectTimeout.Std(),
			Reuse:        sc.Upstream.Reuse.Std(),
			ReuseIdle:    sc.Upstream.ReuseIdle,
		},
		Policy:         pol,
		Record:         g.recordStart(cfg, sc),
		Stacked:        g.stackedProxies(sc.Name, sc.Policy),
		ExecTransfer:   g.execTransfer(sc.Name, sc.Policy),
		StepUp:         stepUp,
		Access:         g.decideAccess(acc),
		Jump:           jump,
		Transparent:    sc.Router.Transparent,
		TProxy:         sc.Router.TProxy,
		Session:        sshsession.Config{},
		LoginGraceTime: cfg.Gateway.LoginGraceTime.Std(),
		MaxChannels:    sc.MaxChannels,
		IdleTimeout:    sc.IdleTimeout.Std(),
		Authenticated:  service.Authenticated,
		Audit:          g.audit,
		Logger:         g.logger,
	})
	grace := cfg.Gateway.LoginGraceTime.Std()
	p := service.Params{
		Gateway:            cfg.Gateway.Name,
		Name:               sc.Name,
		Zones:              zones,
		ClientZones:        sc.ClientZones,
		ServerZones:        sc.ServerZones,
		MaxSessions:        sc.MaxSessions,
		MaxSessionsPerUser: sc.MaxSessionsPerUser,
		Startups:           g.startups,
		Admit:              g.admit,
		Audit:              g.audit,
		Logger:             g.logger,
		Handler: func(ctx context.Context, m *session.Master, c net.Conn) {
			// Each connection has its own ServerConfig, whose callbacks
			// know the connection's session.
			l := &login{m: m}
			cfg := *scfg
			if sc.Router.Transparent {
				cfg = g.transparentConfig(ctx, m, c, sc, scfg, hostCA, hostKeys, rt)
			}
			login := auth.Login{Refused: func(r auth.Refusal) { g.refused(l, r) }, SecondFactor: second, Owed: l.owe}
			if sc.OIDC {
				// config refuses oidc with mfa, and with transparent
				// routing, on one service: the identity provider asks
				// its own second factor, and names the person itself.
				var deadline time.Time
				if grace > 0 {
					deadline = time.Now().Add(grace)
				}
				login.First = authn.SignOn(ctx, deadline)
			}
			clientAuthn.Callbacks(&cfg, login)
			proxy.Handle(ctx, m, c, &cfg)
			g.loginDone(l)
		},
		Release:  proxy.Close,
		Instance: g.instance(sc.Name),
	}
	return p, nil
}

// secondFactor is the auth.SecondFactor of service sc of cfg: TOTP codes
// from each user's totp_file, checked by the gateway's one Verifier.
func (g *Gateway) secondFactor(cfg *config.Config, sc *config.Service) auth.SecondFactor {
	files := make(map[string]string, len(cfg.Users))
	for _, u := range cfg.Users {
		if u.TOTPFile != "" {
			files[u.Name] = u.TOTPFile
		}
	}
	q := mfa.Requirement{Service: sc.Name, All: sc.MFA.Required, StepUp: sc.MFA.RequiredFor}
	return q.SecondFactor(&mfa.TOTP{Files: func(user string) string { return files[user] }, Verifier: g.codes})
}

// transparentConfig returns the server configuration of c, a connection
// to a transparent service: it keeps c's original destination on m
// (sshproxy.OriginalDestination) and presents the gateway's host keys
// under host certificates for that address (and its inventory name, if it
// is an inventory host's), as the destination would: the conntrack entry's
// original destination (REDIRECT, DNAT), or c's own address with
// router.tproxy. Without an original
// destination it returns base unchanged; the router refuses the
// connection once its user is known.
func (g *Gateway) transparentConfig(ctx context.Context, m *session.Master, c net.Conn, sc *config.Service, base *ssh.ServerConfig, ca *hostcert.Authority, hostKeys []ssh.Signer, rt *router.Router) ssh.ServerConfig {
	dst, intercepted, err := netip.AddrPort{}, true, error(nil)
	if sc.Router.TProxy {
		dst, intercepted, err = interceptedDst(c, sc.Listen)
	} else {
		dst, err = originalDst(c)
	}
	if err != nil {
		g.logger.WarnContext(ctx, "transparent service: no original destination", "session_id", m.ID(), "err", err)
		return *base
	}
	if intercepted {
		session.Set(m, sshproxy.OriginalDestination, dst)
	}
	principals := []string{dst.Addr().String()}
	if name, address, ok := rt.InventoryHost(dst.Addr().String(), uint32(dst.Port())); ok {
		principals = hostcert.Principals(name, address)
	}
	cfg, err := certifiedConfig(ca, hostKeys, principals, dst.String()+" "+m.ID())
	if err != nil {
		g.logger.ErrorContext(ctx, "transparent service: host certificate", "session_id", m.ID(), "err", err)
		return *base
	}
	return *cfg
}

// interceptedDst returns where a connection accepted by a TPROXY listener
// (router.tproxy) was going: its own local address, which TPROXY leaves
// as the client sent it. intercepted is false for a connection that
// arrived at the port of listen, the service's listen address: it came
// straight to the gateway and has no original destination.
func interceptedDst(c net.Conn, listen string) (dst netip.AddrPort, intercepted bool, err error) {
	local, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return netip.AddrPort{}, false, fmt.Errorf("gateway: original destination: %w", err)
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return netip.AddrPort{}, false, fmt.Errorf("gateway: original destination: %w", err)
	}
	dst = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	return dst, strconv.Itoa(int(dst.Port())) != port, nil
}

// instanceTimeout bounds the store write that reserves a block of session
// instance numbers; the connection waiting for it is refused after.
const instanceTimeout = 10 * time.Second

// instance returns the service.Params.Instance of the named service: its
// numbers come from blocks reserved in the audit store (audit.Instances),
// so that session ids stay unique across restarts and reloads.
func (g *Gateway) instance(name string) func() (uint64, error) {
	g.mu.Lock()
	a, ok := g.instances[name]
	if !ok {
		a = audit.NewInstances(g.store, name)
		g.instances[name] = a
	}
	g.mu.Unlock()
	return func() (uint64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), instanceTimeout)
		defer cancel()
		return a.Next(ctx)
	}
}

// endOrphans ends the sessions of this gateway that a crash left open in
// the audit store (see audit.EndOrphans), before any session is admitted.
func (g *Gateway) endOrphans(ctx context.Context) error {
	ended, err := audit.EndOrphans(ctx, g.store, g.cfg.Gateway.Name, time.Now())
	if err != nil {
		return fmt.Errorf("gateway: ending the sessions left open by a crash: %w", err)
	}
	if len(ended) > 0 {
		g.logger.Warn("sessions left open by an unexpected stop ended in the audit store", "count", len(ended), "session_ids", ended)
	}
	return nil
}

func policySpec(p config.Policy) policy.Spec {
	s := policy.Spec{
		Pty:           p.PTY,
		Shell:         p.Shell,
		ForcedCommand: p.Exec.ForcedCommand,
		ExecWhole:     p.Exec.Match == config.ExecMatchWhole,
		Env:           p.Env,
		ForwardRemote: p.ForwardRemote,
		ForwardSSH:    p.ForwardSSH,
		Agent:         p.Agent,
		X11:           p.X11,
	}
	for _, a := range p.Exec.Allow {
		s.ExecAllow = append(s.ExecAllow, a.Text)
	}
	for _, d := range p.Exec.Deny {
		s.ExecDeny = append(s.ExecDeny, d.Text)
	}
	for name := range p.Subsystems {
		s.Subsystems = append(s.Subsystems, name)
	}
	for _, f := range p.ForwardLocal {
		hp := f.To
		port := "*"
		if hp.Port != 0 {
			port = strconv.Itoa(hp.Port)
		}
		host := hp.Host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		s.ForwardLocal = append(s.ForwardLocal, policy.Forward{
			To: host + ":" + port, Protocols: f.Protocols,
			SNI: f.SNI, Host: f.Host, DenySNI: f.DenySNI, DenyHost: f.DenyHost,
		})
	}
	return s
}
