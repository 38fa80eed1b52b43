// A Grafana stand-in for the CI: clickhouse-go v2 (Grafana's ClickHouse driver) over HTTP with an HTTP path,
// unmodified, as a data source is configured. It reads Native at its own protocol revision. Prints one JSON
// object: the usage summary for a range (bound parameters), typed values, and the codes of refused queries.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func main() {
	if len(os.Args) != 8 {
		fail(errors.New("usage: sqlclient ADDR USER KEY SUMMARY_SQL START END TYPED_SQL"))
	}
	addr, user, key, summarySQL, start, end, typedSQL := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6], os.Args[7]
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		Protocol:    clickhouse.HTTP,
		HttpUrlPath: "/clickhouse",
		Auth:        clickhouse.Auth{Username: user, Password: key},
	})
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	ctx := context.Background()
	out := map[string]any{}

	bound := clickhouse.Context(ctx, clickhouse.WithParameters(clickhouse.Parameters{"start": start, "end": end}))
	var total, active, sessions uint64
	if err := conn.QueryRow(bound, summarySQL).Scan(&total, &active, &sessions); err != nil {
		fail(fmt.Errorf("summary: %w", err))
	}
	out["summary"] = map[string]uint64{"total_users": total, "active_users": active, "total_sessions": sessions}

	rows, err := conn.Query(bound, typedSQL)
	if err != nil {
		fail(fmt.Errorf("typed: %w", err))
	}
	out["typed"] = scanAll(rows)

	refused := map[string]any{}
	for name, sql := range map[string]string{
		"file":      "SELECT file('/etc/hostname')",
		"aggregate": "SELECT sessions FROM usage_daily LIMIT 1",
	} {
		var v any
		err := conn.QueryRow(ctx, sql).Scan(&v)
		var ex *clickhouse.Exception
		if errors.As(err, &ex) {
			refused[name] = ex.Code
		} else {
			refused[name] = fmt.Sprint(err)
		}
	}
	out["refused"] = refused
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

// scanAll reads every row into values of the driver's own scan types, keyed by column, with the column types.
func scanAll(rows driver.Rows) map[string]any {
	defer rows.Close()
	types := rows.ColumnTypes()
	names := make([]string, len(types))
	typeNames := map[string]string{}
	for i, t := range types {
		names[i] = t.Name()
		typeNames[t.Name()] = t.DatabaseTypeName()
	}
	var all []map[string]any
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, t := range types {
			ptrs[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			fail(fmt.Errorf("scan: %w", err))
		}
		row := map[string]any{}
		for i, p := range ptrs {
			row[names[i]] = reflect.ValueOf(p).Elem().Interface()
		}
		all = append(all, row)
	}
	if err := rows.Err(); err != nil {
		fail(fmt.Errorf("rows: %w", err))
	}
	return map[string]any{"types": typeNames, "rows": all}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
