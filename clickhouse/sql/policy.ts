// What a /clickhouse query may touch: the documented tables of the analytics database, system tables that show
// neither other users' queries nor the server's configuration, table functions that read nothing outside the
// query, and settings that change how results look, never what a query may use. Everything else is refused.

/** The documented tables of the analytics database (clickhouse/README.md). The retired control tables are not. */
export const ANALYTICS_TABLES: ReadonlySet<string> = new Set([
  'usage_events',
  'log_events',
  'usage_daily',
  'usage_first_seen',
  'log_counts_hourly',
  'log_cells_daily',
  'log_day_seals',
  'log_hour_seals',
  'log_day_counts',
  'usage_points',
  'usage_points_coverage',
  'usage_pairs',
  'usage_day_seals',
  'usage_user_days',
  'usage_points_by_day',
  'usage_open_points',
  'ingest_ledger',
  'ingest_arrivals',
  'schema_migrations',
]);

/**
 * System tables a client may read: metadata of databases, tables and columns (what DBeaver and Grafana browse),
 * the engine's catalogues of functions, formats and types, and `settings`, which shows the query's own session
 * (the limits it runs under, readonly = 1) and is what clickhouse-connect reads on connect. Not allowed, among
 * others: query_log, processes and every *_log (other users' queries), server_settings, macros, disks,
 * storage_policies, users, grants (the server's configuration and paths).
 */
export const SYSTEM_TABLES: ReadonlySet<string> = new Set([
  'one',
  'numbers',
  'numbers_mt',
  'zeros',
  'zeros_mt',
  'databases',
  'tables',
  'columns',
  'settings',
  'functions',
  'table_functions',
  'formats',
  'data_type_families',
  'table_engines',
  'time_zones',
  'collations',
  'aggregate_function_combinators',
  'keywords',
]);

/** Views over system.tables and system.columns (the SQL standard's catalogue); every one of them is allowed. */
export const INFORMATION_SCHEMA = new Set(['information_schema', 'INFORMATION_SCHEMA']);

/** Table functions that generate rows from their arguments alone; every other one (file, url, remote, s3, mysql, merge, input, executable, ...) is refused. */
export const TABLE_FUNCTIONS: ReadonlySet<string> = new Set([
  'numbers',
  'numbers_mt',
  'zeros',
  'zeros_mt',
  'generateSeries',
  'generate_series',
  'values',
  'view',
]);

/**
 * Scalar functions refused wherever they appear (compared in lower case): `file` reads any file the process
 * can (measured: it returned /etc/hostname with readonly = 1), dictionaries and Join tables read sources
 * outside the analytics database, and the rest reveal the server's configuration or its disks.
 */
export const REFUSED_FUNCTIONS: ReadonlySet<string> = new Set([
  'file',
  'url',
  'joinget',
  'joingetornull',
  'getsetting',
  'getsettingordefault',
  'getserversetting',
  'getmergetreesetting',
  'getmacro',
  'getclienthttpheader',
  'filesystemavailable',
  'filesystemfree',
  'filesystemcapacity',
  'filesystemunreserved',
  'catboostevaluate',
  'naivebayesclassifier',
  'currentprofiles',
  'enabledprofiles',
  'defaultprofiles',
  'currentroles',
  'enabledroles',
  'defaultroles',
  'getosinformation',
]);

/** Dictionary functions (dictGet, dictHas, ...) all start so. */
export const REFUSED_FUNCTION_PREFIXES = ['dict'];

/** Statements that only read: SELECT (with UNION, INTERSECT, EXCEPT), SHOW TABLES / DATABASES, DESCRIBE, EXISTS. */
export const READ_STATEMENTS: ReadonlySet<string> = new Set([
  'SelectWithUnionQuery',
  'SelectIntersectExceptQuery',
  'ShowTables',
  'DescribeQuery',
  'ExistsTableQuery',
  'ExistsDatabaseQuery',
]);

/** Statements whose tables the engine's query tree resolves (CTEs, unqualified names). */
export const SELECT_STATEMENTS: ReadonlySet<string> = new Set([
  'SelectWithUnionQuery',
  'SelectIntersectExceptQuery',
]);

/**
 * Settings a client may send (URL parameters): how results are formatted and read, nothing that changes what a
 * query may use. Clients send some of these on connect (clickhouse-connect: date_time_input_format,
 * cast_string_to_dynamic_use_inference when writable; @clickhouse/client: enable_http_compression, ...).
 * The limits (max_execution_time, max_result_rows, max_memory_usage) may be sent too: they are applied only
 * when they are lower than the service's own.
 */
export const CLIENT_SETTINGS: ReadonlySet<string> = new Set([
  'date_time_output_format',
  'date_time_input_format',
  'cast_string_to_dynamic_use_inference',
  'output_format_json_quote_64bit_integers',
  'output_format_json_quote_64bit_floats',
  'output_format_json_quote_denormals',
  'output_format_json_quote_decimals',
  'output_format_json_named_tuples_as_objects',
  'output_format_json_array_of_rows',
  'output_format_json_validate_utf8',
  'output_format_write_statistics',
  'output_format_pretty_max_rows',
  'output_format_pretty_color',
  'output_format_csv_crlf_end_of_line',
  'output_format_tsv_crlf_end_of_line',
  'output_format_decimal_trailing_zeros',
  'output_format_native_encode_types_in_binary_format',
  'output_format_binary_encode_types_in_binary_format',
  'output_format_arrow_string_as_string',
  'output_format_parquet_string_as_string',
  'format_csv_delimiter',
  'session_timezone',
  'extremes',
  'join_use_nulls',
  'aggregate_functions_null_for_empty',
  'union_default_mode',
  'max_block_size',
  // Grafana's ClickHouse data source sends its row limit as the `limit` setting (at most that many rows back).
  'limit',
]);

/** Limits a client may lower but never raise. */
export const LOWERABLE_LIMITS = ['max_execution_time', 'max_result_rows', 'max_memory_usage'] as const;

/**
 * URL parameters of ClickHouse's HTTP interface that are not settings: the route reads the ones it honours
 * (query, database, default_format, query_id, param_*, enable_http_compression) and ignores the others
 * (a client's session_id is ignored: every query runs in a session of its own).
 */
export const PROTOCOL_PARAMS: ReadonlySet<string> = new Set([
  'query',
  'database',
  'default_format',
  'query_id',
  'session_id',
  'session_timeout',
  'session_check',
  'compress',
  'decompress',
  'user',
  'password',
  'quota_key',
  'buffer_size',
  'wait_end_of_query',
  'enable_http_compression',
  'http_zlib_compression_level',
  'send_progress_in_http_headers',
  'http_headers_progress_interval_ms',
  'http_wait_end_of_query',
  'http_response_buffer_size',
  'cancel_http_readonly_queries_on_client_close',
  'client_protocol_version',
  'role',
  'readonly',
  'add_http_cors_header',
  'log_comment',
  'client_name',
]);
