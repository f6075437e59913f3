//go:build linux

package main

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/verdict-engine/verdict/store/postgres"
)

// The backing services of the verdict-redis-postgres target. The harness resets them
// before the target starts so every run begins from the same empty state.
const (
	// The benchmark gets its own schema in the test database: the server finds it
	// through search_path in its URL, and the harness resets it through the store.
	postgresAdminURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	benchSchema      = "verdict_bench"
	postgresBenchURL = postgresAdminURL + "&search_path=" + benchSchema
	redisAddr        = "127.0.0.1:6379"
	redisBenchDB     = 15
)

func redisBenchURL() string { return fmt.Sprintf("redis://%s/%d", redisAddr, redisBenchDB) }

// dropServices drops the benchmark schema and empties the benchmark Redis database when a
// run is over: a short run alone left 189,556 keys that expire after one to 30 days, and its
// decisions.
func dropServices(ctx context.Context) error { return clearServices(ctx, false) }

// resetServices drops and recreates the benchmark schema (migrated, empty) and empties
// the benchmark Redis database.
func resetServices(ctx context.Context) error { return clearServices(ctx, true) }

// clearServices drops the benchmark schema, migrates it again when recreate is set, and
// empties the benchmark Redis database.
func clearServices(ctx context.Context, recreate bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, postgresAdminURL, postgres.WithSchema(benchSchema))
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer st.Close()
	if err := st.DropSchema(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if recreate {
		if err := st.Migrate(ctx); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr, DB: redisBenchDB})
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("redis FLUSHDB %d: %w", redisBenchDB, err)
	}
	return nil
}
