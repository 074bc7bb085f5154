package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/sluice-ssh/sluice/internal/config"
	"github.com/sluice-ssh/sluice/internal/gateway"
)

// gatewayCmd is the hidden first argument that runs this program as the
// gateway, like `sluice serve -c FILE`, profiling its CPU into the file
// named by SLUICE_CPUPROFILE. The hook is bench code only: the product has
// no profiling switch.
const gatewayCmd = "_gateway"

func runGateway(args []string) int {
	fs := flag.NewFlagSet(gatewayCmd, flag.ContinueOnError)
	path := fs.String("c", "", "config `FILE`")
	stats := fs.String("stats", "", "on SIGUSR1, write the goroutine count, stack and heap bytes in use to `FILE` (and a heap profile to SLUICE_MEMPROFILE)")
	if err := fs.Parse(args); err != nil || *path == "" {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if p := os.Getenv("SLUICE_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if *stats != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() { // lives as long as the process
			for range usr1 {
				writeStats(*stats)
			}
		}()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.Gateway.Log.Level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := gateway.New(ctx, cfg, logger)
	if err != nil {
		logger.Error("starting the gateway", "err", err)
		return 1
	}
	if err := g.Run(ctx); err != nil {
		logger.Error("gateway stopped", "err", err)
		return 1
	}
	return 0
}

// writeStats writes the goroutine count and the bytes of goroutine stacks
// and heap in use (runtime.MemStats StackInuse and HeapInuse, after two
// collections, the second of which shrinks idle stacks) to path, then a
// heap profile to SLUICE_MEMPROFILE if set; path is written last, so that
// a reader that sees it knows both are complete.
func writeStats(path string) {
	if p := os.Getenv("SLUICE_MEMPROFILE"); p != "" {
		runtime.GC()
		if f, err := os.Create(p); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	line := fmt.Sprintf("%d %d %d", runtime.NumGoroutine(), ms.StackInuse, ms.HeapInuse)
	_ = os.WriteFile(path+".tmp", []byte(line), 0o600)
	_ = os.Rename(path+".tmp", path)
}
