package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/gateway"
)

// reloader is what SIGHUP reloads; *gateway.Gateway is one.
type reloader interface {
	Reload(ctx context.Context, cfg *config.Config) error
}

var _ reloader = (*gateway.Gateway)(nil)

// reloadOnHUP reloads path into g on every SIGHUP until stop is called;
// stop waits for a reload in progress. An invalid file keeps the running
// config and logs each of its errors.
func reloadOnHUP(ctx context.Context, path string, g reloader, logger *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				reload(ctx, path, g, logger)
			}
		}
	})
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}

func reload(ctx context.Context, path string, g reloader, logger *slog.Logger) {
	logger.Info("SIGHUP: reloading", "config", path)
	cfg, err := config.Load(path)
	if err != nil {
		if list, ok := errors.AsType[*config.Errors](err); ok {
			for _, e := range list.List {
				logger.Error("reload: invalid config; keeping the running one", "err", e)
			}
		} else {
			logger.Error("reload: invalid config; keeping the running one", "err", err)
		}
		return
	}
	for _, w := range cfg.Warnings {
		logger.Warn("config", "warning", w.Error())
	}
	if err := g.Reload(ctx, cfg); err != nil {
		logger.Error("reload failed; keeping the running config", "err", err)
	}
}
