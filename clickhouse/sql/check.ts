// The policy applied to a query the engine has parsed (EXPLAIN AST) and, for SELECTs, resolved (EXPLAIN QUERY
// TREE): what statement it is, which tables, table functions and functions it reaches, and whether it writes
// to a file. Pure: the engine's output in, a refusal (SqlError) or the query's FORMAT out.
import { type AstNode, nameParts, walk } from './ast.ts';
import { sqlError } from './errors.ts';
import {
  ANALYTICS_TABLES,
  INFORMATION_SCHEMA,
  READ_STATEMENTS,
  REFUSED_FUNCTION_PREFIXES,
  REFUSED_FUNCTIONS,
  SELECT_STATEMENTS,
  SYSTEM_TABLES,
  TABLE_FUNCTIONS,
} from './policy.ts';

export interface Checked {
  /** The statement's kind as the engine names it (SelectWithUnionQuery, ShowTables, ...). */
  statement: string;
  /** True when the engine's query tree must also be checked (SELECTs: CTEs and unqualified names resolve there). */
  needsTree: boolean;
}

/**
 * Checks a parsed statement; throws the SqlError ClickHouse would give for the first thing refused.
 * `database` is the analytics database (the only current database a query may have).
 */
export function checkAst(root: AstNode, database: string): Checked {
  if (!READ_STATEMENTS.has(root.kind)) {
    throw sqlError(
      'READONLY',
      `Cannot execute query in readonly mode: /clickhouse only reads (got ${root.kind})`,
    );
  }
  const select = SELECT_STATEMENTS.has(root.kind);
  // A SELECT's top-level children: its union list, then INTO OUTFILE's file name (a literal), FORMAT, SETTINGS.
  if (select && root.children.some((c) => c.kind === 'Literal')) {
    throw sqlError('SUPPORT_IS_DISABLED', 'INTO OUTFILE is not allowed on /clickhouse');
  }
  for (const node of walk(root)) {
    if (node.kind === 'Function') checkFunction(node);
    else if (node.kind === 'TableIdentifier') checkTable(nameParts(node.text), database, !select);
    else if (node.kind === 'Identifier') checkIdentifier(nameParts(node.text), database);
    // A SETTINGS clause anywhere. readonly = 1 refuses one on the outer query, but the engine applied a
    // subquery's (measured: SELECT * FROM (SELECT 1 SETTINGS max_memory_usage = 0) ran), which would lift the
    // limits; settings come as URL parameters, through the allow-list, or not at all.
    else if (node.kind === 'Set') {
      throw sqlError(
        'READONLY',
        'Cannot modify settings in readonly mode: a SETTINGS clause is not allowed on /clickhouse',
      );
    }
  }
  return { statement: root.kind, needsTree: select };
}

function checkFunction(node: AstNode): void {
  const name = node.text.replace(/\s+\(alias [^)]*\)\s*$/, '').trim();
  if (node.parent?.kind === 'TableExpression') {
    if (!TABLE_FUNCTIONS.has(name)) {
      throw sqlError(
        'ACCESS_DENIED',
        `Not enough privileges: the table function ${name} is not allowed on /clickhouse`,
      );
    }
    return;
  }
  const lower = name.toLowerCase();
  if (REFUSED_FUNCTIONS.has(lower) || REFUSED_FUNCTION_PREFIXES.some((p) => lower.startsWith(p))) {
    throw sqlError(
      'ACCESS_DENIED',
      `Not enough privileges: the function ${name} is not allowed on /clickhouse`,
    );
  }
}

/** A table name: db.table must be allowed; a bare name is the analytics database's (or a CTE's, for SELECTs). */
function checkTable(parts: string[], database: string, bareMustBeTable: boolean): void {
  if (parts.length === 1) {
    if (bareMustBeTable) checkQualified(database, parts[0] as string, database);
    return;
  }
  checkQualified(parts[0] as string, parts.slice(1).join('.'), database);
}

// A compound identifier outside a table position (`x IN system.query_log`, a column `db.table.col`) reads a
// table when its first part names a database. Anything else is a column of an alias, resolved by the engine.
function checkIdentifier(parts: string[], database: string): void {
  if (parts.length < 2) return;
  const first = parts[0] as string;
  if (first === database || first === 'system' || first === 'default' || INFORMATION_SCHEMA.has(first)) {
    checkQualified(first, parts[1] as string, database);
  }
}

/** Throws unless db.table may be read. */
export function checkQualified(db: string, table: string, database: string): void {
  if (db === database && ANALYTICS_TABLES.has(table)) return;
  if (db === 'system' && SYSTEM_TABLES.has(table)) return;
  if (INFORMATION_SCHEMA.has(db)) return;
  throw sqlError(
    'ACCESS_DENIED',
    `Not enough privileges: ${db}.${table} cannot be read on /clickhouse (docs/sql.md lists the tables that can)`,
  );
}

// EXPLAIN QUERY TREE names every table it resolved as "table_name: db.table" and every table function as
// "table_function_name: name": CTEs are inlined, unqualified names resolved against the current database.
const TREE_TABLE = /\btable_name: (\S+?),?$|\btable_name: (\S+?),/;
const TREE_TABLE_FUNCTION = /\btable_function_name: ([^\s,]+)/;

/** Checks the tables and table functions of the engine's resolved query tree. */
export function checkQueryTree(tree: string, database: string): void {
  for (const line of tree.split('\n')) {
    const t = TREE_TABLE.exec(line);
    const name = t?.[1] ?? t?.[2];
    if (name !== undefined) {
      const dot = name.indexOf('.');
      if (dot < 0)
        throw sqlError('ACCESS_DENIED', `Not enough privileges: ${name} cannot be read on /clickhouse`);
      checkQualified(name.slice(0, dot), name.slice(dot + 1), database);
    }
    const f = TREE_TABLE_FUNCTION.exec(line);
    if (f && !TABLE_FUNCTIONS.has(f[1] as string)) {
      throw sqlError(
        'ACCESS_DENIED',
        `Not enough privileges: the table function ${f[1]} is not allowed on /clickhouse`,
      );
    }
  }
}

/**
 * The query's FORMAT and whether it writes to a file, from the engine's own formatting of it (formatQuery):
 * top-level clauses start at the beginning of a line, and literals never hold a raw newline there.
 */
export function clausesOf(formatted: string): {
  format: string | undefined;
  outfile: boolean;
  explainable: string;
} {
  let format: string | undefined;
  let outfile = false;
  const rest: string[] = [];
  for (const line of formatted.split('\n')) {
    if (line.startsWith('INTO OUTFILE ')) outfile = true;
    const m = /^FORMAT (`?)([A-Za-z0-9_]+)\1$/.exec(line);
    if (m) format = m[2];
    else rest.push(line);
  }
  // EXPLAIN of a query with FORMAT would write the explanation itself in that format.
  return { format, outfile, explainable: rest.join('\n') };
}
