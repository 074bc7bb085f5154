package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/sluice-ssh/sluice/internal/access"
	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/gateway"
)

// runServe is `sluice serve -c FILE`: run the gateway until SIGINT or
// SIGTERM, then drain; SIGHUP reloads the config file.
func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config `FILE`")
	if err := fs.Parse(args); err != nil || *path == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: sluice serve -c FILE")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	logger := newLogger(stderr, cfg.Gateway.Log)
	for _, w := range slices.Concat(cfg.Warnings, access.Lint(cfg)) {
		logger.Warn("config", "warning", w.Error())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := gateway.New(ctx, cfg, logger)
	if err != nil {
		// One plain line, whatever the log format: the operator reads it
		// on a terminal or in the journal.
		fmt.Fprintln(stderr, "sluice serve: cannot start:", err)
		return 1
	}
	for _, s := range cfg.Services {
		logger.Info("listening", "service", s.Name, "addr", g.Addr(s.Name).String())
	}
	stopReload := reloadOnHUP(ctx, *path, g, logger)
	defer stopReload()
	if err := g.Run(ctx); err != nil {
		logger.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}

// newLogger picks the log handler and level: only main does.
func newLogger(w io.Writer, l config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
